"""The admin side of the receiver: the JSON API (``/api``, :mod:`receiver.admin.api`) and the web
pages (``/ui``, :mod:`receiver.admin.pages`), mounted only when ``FLOWHOOKS_ADMIN_TOKEN`` is set
(:mod:`receiver.admin.site`)."""
