"""Public tests of hw3 (shape and type checks, no answers), for grader.check."""
