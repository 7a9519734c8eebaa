-- Company hooks on project-level resources (issue 13). A company hook receives the events of
-- project-level resources it has triggers for from every project of its company, or, when it
-- lists projects here, from those only. Fan-out of a project's event reads the company's
-- triggers for the event (triggers_by_event with project_id NULL), then one primary-key probe
-- per such hook: the number of projects never enters the cost.
CREATE TABLE hook_projects (
    hook_name  TEXT    NOT NULL REFERENCES hooks (name) ON DELETE CASCADE,
    project_id INTEGER NOT NULL,
    PRIMARY KEY (hook_name, project_id)
) WITHOUT ROWID;
