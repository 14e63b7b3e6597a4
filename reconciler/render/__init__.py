"""Renderers: each turns a finished model into text and never compares, reads or prints anything.

One module per model: `plan.py` (a plan or a review of one: text, compact, markdown, JSON) and `scan.py`
(a scan: text, markdown, JSON); `common.py` holds how both show a live value and GitHub's size limit.
Callers import the module they need (`reconciler.render.plan`); this package re-exports nothing, so
each name has one home.
"""
