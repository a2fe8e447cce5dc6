"""`agentdistill ui`: a local web app over the same stores the CLI uses (chat threads, trajectories, bench and
distill runs). Server-rendered pages (Jinja2, autoescaped) with small vanilla scripts; every asset ships in the
package, nothing comes from a CDN. See app.py for the layout and security.py for who may call what."""
