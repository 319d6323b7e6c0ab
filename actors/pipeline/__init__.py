"""The CI/CD pipeline: its configuration, its plan (a graph of tasks, as events) and the skills of its steps."""
