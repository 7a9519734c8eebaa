-- Standard Webhooks signing: each hook's secret, and the previous one while a rotation's
-- overlap lasts (previous_secret_expire_time, microseconds since the Unix epoch, NULL when
-- there is none). Secrets are 'whsec_' and base64, which SQL cannot mint, so hooks that
-- existed before this step get no secret ('') and go on being delivered unsigned, as before;
-- the API shows them with signing_disabled set, and RotateSigningSecret gives them a secret
-- (signing starts with it). Every hook created from now on is written with a secret.
ALTER TABLE hooks ADD COLUMN signing_disabled INTEGER NOT NULL DEFAULT 0;
ALTER TABLE hooks ADD COLUMN signing_secret TEXT NOT NULL DEFAULT '';
ALTER TABLE hooks ADD COLUMN previous_signing_secret TEXT NOT NULL DEFAULT '';
ALTER TABLE hooks ADD COLUMN previous_secret_expire_time INTEGER;
