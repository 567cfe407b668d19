"""The demo organisation (``manage.py seed_demo``) and the agent simulator (``manage.py simulate_agents``).

Nothing in the product imports this app; it may import anything. Seeding needs the demo's own
requirements (``requirements-demo.txt``); the rest of Custos runs without them.
"""
