FROM python:3.11-slim
WORKDIR /app
ENV PYTHONDONTWRITEBYTECODE=1 PYTHONUNBUFFERED=1
COPY requirements.txt .
RUN pip install --no-cache-dir -r requirements.txt
COPY run.py mongo-init.js ./
COPY src ./src
RUN useradd --system --uid 10001 citypulse
USER citypulse
EXPOSE 5000
# Ready: serving, and MongoDB answers (503 otherwise). Docker and compose only report the state, so
# readiness is the useful signal; an orchestrator that restarts unhealthy containers (Swarm,
# a Kubernetes livenessProbe) should probe /api/health/live instead, or a MongoDB outage
# restarts every backend.
HEALTHCHECK --interval=15s --timeout=3s --start-period=30s --retries=3 \
  CMD python -c "import os, sys, urllib.request as u; sys.exit(u.urlopen('http://127.0.0.1:%s/api/health/ready' % os.environ.get('PORT', '5000'), timeout=2).status != 200)"
CMD ["python", "run.py"]
