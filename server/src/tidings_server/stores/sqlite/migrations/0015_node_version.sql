-- Each node's tidings-server version, as it registered (issue 16): `tidings-server status` shows
-- what every node of a cluster runs, so a rolling upgrade can be followed. '' for nodes
-- registered before this step or by a heartbeat alone.
ALTER TABLE nodes ADD COLUMN version TEXT NOT NULL DEFAULT '';
