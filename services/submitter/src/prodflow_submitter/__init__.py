"""prodflow submitter: Campaigns from jobs.json: job documents, .exactly, sites and compute backends."""
