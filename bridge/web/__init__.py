"""The admin web app (Starlette): login, Connect Whop, admin page, background jobs, webhooks."""
