"""The closed loop: reviewers' decisions become labels, a challenger is trained on them, compared with the
champion, promoted only when it wins, and otherwise shadowed.

- `loop.labels`: which decisions count as labels, one case per entity, the loss a decided case carries;
- `loop.rows`: decided cases and base data as model rows (pure, point in time);
- `loop.retrain`: `triage retrain` (I/O at its edges: the store, MLflow);
- `loop.shadow`: `triage compare`, the champion against the shadow challenger on decided traffic;
- `loop.report`: tables and Markdown for the reports.
"""
