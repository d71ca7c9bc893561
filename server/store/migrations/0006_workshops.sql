-- Workshops: a lab run for a roster of learners.
--
-- A learner's subject is '<workshop>/<name>': it is the subject of their
-- token and the owner of their sandboxes and grades, which is how the
-- learner's sandboxes and grades are found (sandboxes.owner, grades.owner).
-- ttl is each learner's sandbox lifetime in nanoseconds (0: the server's
-- default); deleted is 0 until the workshop is deleted. A deleted workshop
-- keeps its row and roster so that its report can still be made.
CREATE TABLE workshops (
    id               TEXT PRIMARY KEY,
    lab              TEXT NOT NULL,
    ttl              INTEGER NOT NULL DEFAULT 0,
    creator          TEXT NOT NULL DEFAULT '',
    instructor_token TEXT NOT NULL DEFAULT '',
    created          INTEGER NOT NULL,
    deleted          INTEGER NOT NULL DEFAULT 0
);

CREATE INDEX workshops_created_id ON workshops (created, id);

-- The roster. sandbox is the last sandbox provisioned for the learner
-- (kept after it is gone); failure is why the last provisioning failed,
-- '' after one that succeeded.
CREATE TABLE learners (
    workshop TEXT NOT NULL REFERENCES workshops (id),
    name     TEXT NOT NULL,
    seq      INTEGER NOT NULL, -- roster order
    token    TEXT NOT NULL DEFAULT '',
    sandbox  TEXT NOT NULL DEFAULT '',
    failure  TEXT NOT NULL DEFAULT '',
    PRIMARY KEY (workshop, name)
);

-- Serves "latest grade per owner per exercise" for reports and progress.
CREATE INDEX grades_owner_exercise ON grades (owner, exercise, id);
