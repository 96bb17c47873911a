"""Self-checks for the chapters' exercises: one module per chapter (``ch01``, ``ch02``, ...).

Each ``check_*`` function takes the student's answer, prints ``Correct!`` or a specific hint, and
returns ``True`` or ``False``. It never raises on a wrong answer, so a notebook keeps running.
The checks are built with one toolkit, :mod:`quantbook.exercises._grading` (readers, the
``@check`` decorator, hints as data); ``lab`` holds the graded lab's per-student inputs.
"""
