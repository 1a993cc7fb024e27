"""What the campaigns share: the demo's steps and report, seed run directories, running steps then a report."""
