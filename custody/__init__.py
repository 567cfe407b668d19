"""The auditor's console: the chain of custody of any decision or change, agent sessions, the framework
mapping with live evidence, and the overview. Reads every other app (``custody → reviews → governance →
audit``); changes nothing but through their services."""
