-- Company hooks on project-level resources (issue 13). A company hook receives the events of
-- project-level resources it has triggers for from every project of its company, or, when it
-- lists projects here, from those only. Fan-out of a project's event reads two more index
-- ranges: the triggers for the event of the company's hooks without a list (all_projects, kept
-- by the store as lists come and go), and the hooks listing the event's project, each with a
-- primary-key probe of its trigger. Neither the number of projects nor hooks listing other
-- projects enter the cost.
CREATE TABLE hook_projects (
    hook_name  TEXT    NOT NULL REFERENCES hooks (name) ON DELETE CASCADE,
    company_id INTEGER NOT NULL,
    project_id INTEGER NOT NULL,
    PRIMARY KEY (hook_name, project_id)
) WITHOUT ROWID;
CREATE INDEX hook_projects_by_project ON hook_projects (company_id, project_id, hook_name);

-- 1 unless the trigger's hook is a company hook with a project list.
ALTER TABLE triggers ADD COLUMN all_projects INTEGER NOT NULL DEFAULT 1;
CREATE INDEX triggers_of_every_project ON triggers (company_id, resource_name, event_type)
    WHERE project_id IS NULL AND all_projects = 1;

-- Project templates (issue 13): a company's hook definitions, copied into a project's hooks
-- when the template is applied. The definitions are one JSON text (stores/templates.py), their
-- Authorization headers sealed like every other secret; ``revision`` grows with every update.
CREATE TABLE templates (
    name        TEXT    NOT NULL PRIMARY KEY,
    company_id  INTEGER NOT NULL,
    display_name TEXT   NOT NULL,
    hooks       TEXT    NOT NULL,
    revision    INTEGER NOT NULL,
    create_time INTEGER NOT NULL,
    update_time INTEGER NOT NULL
);
CREATE INDEX templates_by_company ON templates (company_id, name);

-- A hook made from a template records which one and which revision ('' and 0 otherwise).
ALTER TABLE hooks ADD COLUMN template TEXT NOT NULL DEFAULT '';
ALTER TABLE hooks ADD COLUMN template_revision INTEGER NOT NULL DEFAULT 0;

-- A company hook's overview narrowed to one project counts its deliveries there by status,
-- from this index alone.
CREATE INDEX deliveries_by_hook_project ON deliveries (hook_name, project_id, status);
