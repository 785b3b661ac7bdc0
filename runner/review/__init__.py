"""The operator's review of a batch: pick jobs by key or prefix, reject or accept their videos,
regenerate the rejected ones (a fresh sample: a new paid task on the next run), verify stored
files against the ledger and restore them from the provider, and the local review page
(:mod:`runner.review.server`). Below the CLI; above the ledger, the store and the client."""
