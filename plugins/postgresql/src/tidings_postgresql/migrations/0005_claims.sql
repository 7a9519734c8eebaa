-- Claims counted per delivery since its last recorded attempt (or redelivery): a claim that
-- ends with no attempt recorded means its server died mid-attempt, and a delivery that keeps
-- killing servers is failed instead of claimed again and again (docs/architecture.md).
ALTER TABLE deliveries ADD COLUMN claims_since_attempt integer NOT NULL DEFAULT 0;
