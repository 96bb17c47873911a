"""Public tests of lab (shape and type checks, no answers), for grader.check."""
