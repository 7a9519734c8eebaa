-- Company hooks on project-level resources (issue 13): a company hook receives the events of
-- project-level resources it has triggers for from every project of its company, or, when
-- ``projects`` is not empty, from those projects only. Fan-out of a project's event reads two
-- more index ranges: the triggers for the event of the company's hooks without a list
-- (all_projects, kept by the store as lists come and go), and the hooks listing the event's
-- project (a GIN index of the lists), each probing its trigger by primary key. Neither the
-- number of projects nor hooks listing other projects enter the cost.
ALTER TABLE hooks ADD COLUMN projects bigint[] NOT NULL DEFAULT '{}';
CREATE INDEX hooks_by_listed_project ON hooks USING gin (projects) WHERE project_id IS NULL;
-- true unless the trigger's hook is a company hook with a project list.
ALTER TABLE triggers ADD COLUMN all_projects boolean NOT NULL DEFAULT true;
CREATE INDEX triggers_of_every_project ON triggers (company_id, resource_name, event_type)
    WHERE project_id IS NULL AND all_projects;

-- Project templates: a company's hook definitions, copied into a project's hooks when the
-- template is applied; the definitions are one JSON text (tidings_server.stores.templates),
-- their Authorization headers sealed. ``revision`` grows with every update.
CREATE TABLE templates (
    name         text COLLATE "C" NOT NULL PRIMARY KEY,
    company_id   bigint NOT NULL,
    display_name text NOT NULL,
    hooks        text NOT NULL,
    revision     bigint NOT NULL,
    create_time  timestamptz NOT NULL,
    update_time  timestamptz NOT NULL
);
CREATE INDEX templates_by_company ON templates (company_id, name);

-- A hook made from a template records which one and which revision ('' and 0 otherwise).
ALTER TABLE hooks ADD COLUMN template text NOT NULL DEFAULT '';
ALTER TABLE hooks ADD COLUMN template_revision bigint NOT NULL DEFAULT 0;

-- A company hook's overview narrowed to one project counts its deliveries there by status,
-- from this index alone.
CREATE INDEX deliveries_by_hook_project ON deliveries (hook_name, project_id, status);
