"""Planning core: model results -> navigation goals, manipulation goals and status."""
