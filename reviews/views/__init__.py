"""Console pages of access reviews: the reviewer's queue (``queue``) and campaigns (``campaigns``)."""
