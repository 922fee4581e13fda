"""The admin API: dial plans and prompts over HTTP, for admins, supervisors, agents."""
