"""The project's ASGI application with static files, for the browser tests' uvicorn.

``make run`` serves static files through ``runserver``; under uvicorn nothing does unless
asked, and the desk and the widget need their scripts.
"""

from __future__ import annotations

from django.contrib.staticfiles.handlers import ASGIStaticFilesHandler

from supportdesk.asgi import application as project_application

application = ASGIStaticFilesHandler(project_application)
