"""Storage layer: SQLAlchemy models, the trial repository and ClinicalTrials.gov ingestion."""
