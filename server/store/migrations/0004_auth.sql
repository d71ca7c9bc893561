-- Callers and ownership.
--
-- tokens: bearer tokens for the TCP listener. Only a SHA-256 of the secret
-- is kept; the secret is shown once, when the token is made. role is one of
-- admin, instructor, learner; subject names who holds it (a learner name,
-- an instructor's login); workshop ties a learner token to a workshop, or
-- an instructor token to the workshops it may see ('' = none). revoked is
-- 0 while the token is good.
CREATE TABLE tokens (
    id       TEXT PRIMARY KEY,
    hash     BLOB NOT NULL UNIQUE,
    role     TEXT NOT NULL CHECK (role IN ('admin', 'instructor', 'learner')),
    subject  TEXT NOT NULL,
    workshop TEXT NOT NULL DEFAULT '',
    created  INTEGER NOT NULL,
    revoked  INTEGER NOT NULL DEFAULT 0
);

-- owner is the subject of the caller a sandbox was made for: "uid:1000"
-- for a unix-socket caller, the token's subject over TCP; '' for rows from
-- before this migration (visible to admins only). Grades carry their
-- sandbox's owner so they stay visible to it after the sandbox is gone.
ALTER TABLE sandboxes ADD COLUMN owner TEXT NOT NULL DEFAULT '';
CREATE INDEX sandboxes_owner ON sandboxes (owner);
ALTER TABLE grades ADD COLUMN owner TEXT NOT NULL DEFAULT '';
