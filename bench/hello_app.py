"""The HTTP ceiling: a hello-world Flask app, served by the same gunicorn settings as ours.

GET / answers a small JSON body; POST / and DELETE / answer too, so every figure's requests
(same methods, same headers and bodies) can be replayed against it unchanged.
"""
from flask import Flask, jsonify

app = Flask(__name__)


@app.route("/", methods=["GET", "POST", "DELETE"])
@app.route("/<path:_any>", methods=["GET", "POST", "DELETE"])
def hello(_any=None):
    """Hello, world."""
    return jsonify({"hello": "world"})
