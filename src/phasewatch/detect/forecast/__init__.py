"""Forecasting a transition from what a run logged before it (the forecasting benchmark).

:mod:`.features`: causal features of one run at its decision step; :mod:`.table`: the
run × feature table of a set of runs with their labels; :mod:`.model`: the combined
forecaster (logistic regression, saved as JSON); :mod:`.evaluate`: run-level AUROC with
bootstrap intervals, alarms at a false-alarm budget, cross-validation by run and
leave-one-null-kind-out.
"""
