"""scikit-learn's callback API (1.9 and later), as the estimators' fit reports to it."""





try:  # scikit-learn's callback API (1.9 and later)
    from sklearn.callback import CallbackSupportMixin, with_callbacks
except ImportError:  # pragma: no cover - older scikit-learn

    class CallbackSupportMixin:
        """Placeholder: this scikit-learn has no callback API."""

    def with_callbacks(method):
        return method


class _FitCallbacks:
    """scikit-learn callback hooks of one fit: the root task and one subtask per iteration."""

    def __init__(self, estimator, X, y, sample_weight):
        self.estimator = estimator
        self.X = X
        self.y = y
        self.metadata = None if sample_weight is None else {"sample_weight": sample_weight}
        iterative = estimator.solver != "lbfgs"
        self.ctx = estimator._init_callback_context(max_subtasks=estimator.max_iter if iterative else 0)
        self.ctx.call_on_fit_task_begin(estimator=estimator, X=X, y=y, metadata=self.metadata)
        self.iteration_ctx = None

    def _fitted_state(self):
        est = self.estimator
        return {"coefs_": [c.copy() for c in est.coefs_], "intercepts_": [b.copy() for b in est.intercepts_]}

    def begin_iteration(self):
        self.iteration_ctx = self.ctx.subcontext(task_name="iteration")
        self.iteration_ctx.call_on_fit_task_begin(
            estimator=self.estimator, X=self.X, y=self.y, metadata=self.metadata,
            reconstruction_attributes=self._fitted_state,
        )

    def end_iteration(self):
        """Call the iteration's end hooks; True when a callback asks to stop."""
        return self.iteration_ctx.call_on_fit_task_end(
            estimator=self.estimator, X=self.X, y=self.y, metadata=self.metadata,
            reconstruction_attributes=self._fitted_state,
        )

    def end(self):
        self.ctx.call_on_fit_task_end(
            estimator=self.estimator, X=self.X, y=self.y, metadata=self.metadata,
            reconstruction_attributes=self._fitted_state,
        )
