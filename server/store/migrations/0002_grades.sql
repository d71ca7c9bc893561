-- Grades: one row per graded exercise. Like events, grades are kept after
-- their sandbox is deleted (an expired sandbox's grades are kept).
CREATE TABLE grades (
    id        INTEGER PRIMARY KEY AUTOINCREMENT,
    sandbox   TEXT NOT NULL,
    lab       TEXT NOT NULL,
    lab_hash  TEXT NOT NULL,
    exercise  TEXT NOT NULL,
    time      INTEGER NOT NULL,
    score     INTEGER NOT NULL,
    max_score INTEGER NOT NULL,
    passed    INTEGER NOT NULL,
    duration  INTEGER NOT NULL, -- nanoseconds spent grading
    report    BLOB NOT NULL     -- the full report, JSON
);

CREATE INDEX grades_sandbox_id ON grades (sandbox, id);
