"""The framework's ceiling: a hello-world Flask app with the ballot endpoint's shape.

``POST /api/v1/elections/<id>/ballots`` parses the JSON body and answers 201 with a
small JSON object; ``GET /api/v1/health`` answers 200. No storage, no HSM, no rate
limits or security headers: the least a Flask JSON POST can cost. The cast benchmark
serves it with exactly the server configuration the real app gets.
"""

from __future__ import annotations

from flask import Flask, jsonify, request


def create_app() -> Flask:
    app = Flask(__name__)

    @app.post("/api/v1/elections/<election_id>/ballots")
    def cast_ballot(election_id: str):
        body = request.get_json()
        return jsonify({"election": election_id, "received": sorted(body)}), 201

    @app.get("/api/v1/health")
    def health():
        return jsonify({"status": "ok"})

    return app
