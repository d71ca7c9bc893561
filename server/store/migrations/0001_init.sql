-- Initial schema. Times are UTC unix nanoseconds; 0 means "not yet".

-- Key/value facts about this database itself (instance id, ...).
CREATE TABLE meta (
    key   TEXT PRIMARY KEY,
    value TEXT NOT NULL
);

CREATE TABLE sandboxes (
    id      TEXT PRIMARY KEY,
    lab     TEXT NOT NULL,
    state   TEXT NOT NULL CHECK (state IN ('CREATING', 'READY', 'DELETING', 'FAILED')),
    failure TEXT NOT NULL DEFAULT '',
    created INTEGER NOT NULL,
    ready   INTEGER NOT NULL DEFAULT 0
);

-- Serves ListSandboxes' keyset pagination (created desc, id desc).
CREATE INDEX sandboxes_created_id ON sandboxes (created, id);

CREATE TABLE nodes (
    sandbox    TEXT NOT NULL REFERENCES sandboxes (id) ON DELETE CASCADE,
    name       TEXT NOT NULL,
    seq        INTEGER NOT NULL, -- insertion order within the sandbox
    uid_base   INTEGER NOT NULL UNIQUE,
    pid        INTEGER NOT NULL DEFAULT 0,
    start_time INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (sandbox, name)
);

-- One row per leased host uid range; the primary key makes a range unique
-- host-wide for this database. Leases die with their node.
CREATE TABLE uid_leases (
    base    INTEGER PRIMARY KEY,
    sandbox TEXT NOT NULL,
    node    TEXT NOT NULL,
    FOREIGN KEY (sandbox, node) REFERENCES nodes (sandbox, name) ON DELETE CASCADE
);

CREATE UNIQUE INDEX uid_leases_node ON uid_leases (sandbox, node);

-- Audit trail; deliberately not tied to sandboxes so it outlives them.
CREATE TABLE events (
    id      INTEGER PRIMARY KEY AUTOINCREMENT,
    time    INTEGER NOT NULL,
    sandbox TEXT NOT NULL,
    kind    TEXT NOT NULL,
    message TEXT NOT NULL
);

CREATE INDEX events_sandbox_id ON events (sandbox, id);
