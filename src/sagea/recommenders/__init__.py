"""Group recommenders (docs/method.md §5): SAGEA fusions and the dense baselines.

``base`` (interfaces, exclusion, stable top-k), ``fusion`` + ``sagea`` (SAGEA),
``aggregation`` (ELSA, ELSA_INT, ADD, MUL, LMS, MPL), ``gfar``, ``epfuzzda``, ``popular``;
``single_user`` holds the single-user POP / EASE baselines of the ELSA stage.
"""
