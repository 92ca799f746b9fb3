"""Data subjects' rights (privacy notice, "Your Rights and Access to your information")."""
