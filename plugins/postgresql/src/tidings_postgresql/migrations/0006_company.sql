-- Company hooks on project-level resources (issue 13): a company hook receives the events of
-- project-level resources it has triggers for from every project of its company, or, when
-- ``projects`` is not empty, from those projects only. Fan-out of a project's event reads the
-- company's triggers for the event (triggers_by_event with project_id NULL) and checks each
-- such hook's list: the number of projects never enters the cost.
ALTER TABLE hooks ADD COLUMN projects bigint[] NOT NULL DEFAULT '{}';
