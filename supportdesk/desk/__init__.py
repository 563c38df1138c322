"""The human agents' desk (``/desk/``), the supervisors' admin pages and the widget demo.

Entry points only: every page reads through the apps' selectors and serializers, and
every action goes through the existing REST API (desk pages) or the services (admin
forms). Nothing here writes a model.
"""
