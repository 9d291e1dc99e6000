"""The labelling page and its JSON API (Flask).

Routes: ``/`` the page; ``/images/<id>`` an image of the collection (only those: ids are
looked up, never joined into paths); ``GET /api/next`` the next image to label and the
progress; ``POST /api/label`` and ``POST /api/skip``. POST bodies must be JSON with the JSON
content type: a browser sends that cross-origin only after a CORS preflight, which this
server never grants, so another web site cannot write labels through the user's browser.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from flask import Flask, abort, jsonify, request, send_file, url_for
from flask.typing import ResponseReturnValue

from kisbench.errors import InputError
from kisbench.labeltool.files import LabelFiles, State, Taken
from kisbench.labeltool.sampler import HOLD_S, next_image, sampling_order

DEFAULT_SEED = 2024  # the seed that drew the demo collection's labels (labels/README.md)


@dataclass(frozen=True)
class Session:
    """What one running server labels: a collection, as one annotator, towards a target."""

    collection: str
    annotator: str
    images: dict[str, Path]  # image id -> file
    files: LabelFiles
    target: int
    seed: int = DEFAULT_SEED


def create_app(session: Session, *, hold_s: float = HOLD_S) -> Flask:
    app = Flask(__name__, static_folder="static", static_url_path="/static")
    app.json.sort_keys = False  # type: ignore[attr-defined]
    order = sampling_order(list(session.images), session.seed)

    def progress(state: State) -> dict[str, Any]:
        taken = state.taken()
        return {
            "labelled": len(state.labelled),
            "skipped": len(state.skipped),
            "mine": state.labels_by()[session.annotator],
            "target": session.target,
            "images": len(session.images),
            "remaining": sum(image_id not in taken for image_id in order),
        }

    def body() -> dict[str, Any]:
        data = request.get_json(silent=True)
        if not isinstance(data, dict):
            abort(_error(415, "send a JSON object with Content-Type: application/json"))
        image_id = data.get("id")
        if not isinstance(image_id, str) or image_id not in session.images:
            abort(_error(400, f"{image_id!r} is not an image of collection {session.collection}"))
        return data

    @app.get("/")
    def index() -> ResponseReturnValue:
        return app.send_static_file("index.html")

    @app.get("/api/next")
    def next_for_tab() -> ResponseReturnValue:
        client = request.args.get("client", "")
        image_id, state = session.files.claim(
            lambda state, holds: next_image(
                order, state.taken(), holds, client, now=time.time(), hold_s=hold_s
            )
        )
        return jsonify(
            collection=session.collection,
            annotator=session.annotator,
            id=image_id,
            image=url_for("image", image_id=image_id) if image_id else None,
            progress=progress(state),
        )

    @app.get("/images/<path:image_id>")
    def image(image_id: str) -> ResponseReturnValue:
        path = session.images.get(image_id)
        if path is None:
            abort(404)
        return send_file(path.resolve(), max_age=3600)

    @app.post("/api/label")
    def label() -> ResponseReturnValue:
        data = body()
        state = session.files.add_label(
            data["id"],
            str(data.get("short_label", "")),
            str(data.get("long_label", "")),
            session.annotator,
        )
        return jsonify(saved=data["id"], progress=progress(state))

    @app.post("/api/skip")
    def skip() -> ResponseReturnValue:
        data = body()
        state = session.files.add_skip(data["id"], str(data.get("reason", "")), session.annotator)
        return jsonify(skipped=data["id"], progress=progress(state))

    @app.errorhandler(InputError)
    def bad_input(err: InputError) -> ResponseReturnValue:
        return _error(400, str(err))

    @app.errorhandler(Taken)
    def taken(err: Taken) -> ResponseReturnValue:
        return _error(409, str(err))

    return app


def _error(status: int, message: str) -> ResponseReturnValue:
    response = jsonify(error=message)
    response.status_code = status
    return response
