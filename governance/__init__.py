"""Keys, policies, warrants, approvals, votes, budgets and signed checkpoints. No Ray here.

May import ``events``.
"""
