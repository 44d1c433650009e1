"""``facesieve apply``: the cleaned dataset, from a report's actions and a person's decisions."""
