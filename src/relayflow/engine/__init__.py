"""The pure core: definitions, validation, templates and the step function.

Nothing here touches a database, the network, the clock or the environment; the
services layer hands in `now`, the contact and the results of side effects.
"""
