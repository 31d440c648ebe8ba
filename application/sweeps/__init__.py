"""Parameter sweeps: a search space, the trials it yields, the executor that runs them, the
ranking of their results, walk-forward folds and the Deflated Sharpe Ratio. Client-side
use cases: the strategy is the user's code; pure, behind ports."""
