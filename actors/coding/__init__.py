"""The coding team: what coders, test writers, reviewers and documenters do to a repository through a model."""
