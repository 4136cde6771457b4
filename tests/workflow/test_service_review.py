"""The review queue and feedback through the service."""

from __future__ import annotations

from typing import Any

from knowledge import feedback_for


def test_the_queue_lists_open_items_most_uncertain_first_with_top_guesses(
    make_client: Any, seeded: Any
) -> None:
    client = make_client()
    headers = seeded.headers("viewer")
    assert client.get("/api/review", headers=headers).json() == {
        "agents": [{"agent": "intent", "open": 6}]
    }
    items = client.get("/api/review/intent?limit=4", headers=headers).json()["items"]
    assert len(items) == 4
    priorities = [i["priority"] for i in items]
    assert priorities == sorted(priorities, reverse=True)
    first = items[0]
    assert first["input"]["text"].startswith("ticket 0")
    assert first["guesses"][0]["label"] == first["label"]
    assert len(first["guesses"]) == 3
    probabilities = [g["probability"] for g in first["guesses"]]
    assert probabilities == sorted(probabilities, reverse=True)
    assert first["label_set"] == ["card_lost", "refund", "top_up", "balance"]


def test_a_label_is_stored_as_the_keys_feedback_and_leaves_the_queue(
    make_client: Any, seeded: Any, service_db: Any
) -> None:
    client = make_client()
    item = client.get("/api/review/intent", headers=seeded.headers("viewer")).json()["items"][0]
    response = client.post(
        "/api/feedback",
        json={"prediction_id": item["prediction_id"], "label": "top_up"},
        headers=seeded.headers("labeler"),
    )
    assert response.status_code == 201
    assert response.json()["author"] == "labeler-key"
    assert response.json()["source"] == "human"
    remaining = client.get("/api/review/intent", headers=seeded.headers("viewer")).json()
    assert item["id"] not in [i["id"] for i in remaining["items"]]
    assert client.get("/api/review", headers=seeded.headers("viewer")).json()["agents"] == [
        {"agent": "intent", "open": 5}
    ]
    with service_db.session() as session:
        (stored,) = feedback_for(session, item["prediction_id"])
    assert (stored.label, stored.author) == ("top_up", "labeler-key")
    listed = client.get(
        f"/api/predictions/{item['prediction_id']}/feedback", headers=seeded.headers("viewer")
    ).json()["feedback"]
    assert [f["label"] for f in listed] == ["top_up"]


def test_bad_feedback_is_refused_with_the_reason(make_client: Any, seeded: Any) -> None:
    client = make_client()
    headers = seeded.headers("labeler")
    pid = seeded.prediction_ids[0]
    outside = client.post(
        "/api/feedback", json={"prediction_id": pid, "label": "x"}, headers=headers
    )
    assert outside.status_code == 422
    assert "card_lost" in outside.json()["message"]  # lists the valid labels
    empty = client.post("/api/feedback", json={"prediction_id": pid}, headers=headers)
    assert empty.status_code == 422
    unknown = client.post(
        "/api/feedback", json={"prediction_id": 999_999, "label": "refund"}, headers=headers
    )
    assert unknown.status_code == 404
    ok = client.post(
        "/api/feedback", json={"prediction_id": pid, "label": "refund"}, headers=headers
    )
    assert ok.status_code == 201
    again = client.post(
        "/api/feedback", json={"prediction_id": pid, "label": "refund"}, headers=headers
    )
    assert again.status_code == 409
    assert again.json()["error"] == "conflict"


def test_two_labellers_may_label_the_same_prediction(make_client: Any, seeded: Any) -> None:
    client = make_client()
    pid = seeded.prediction_ids[1]
    for role in ("labeler", "operator"):
        response = client.post(
            "/api/feedback",
            json={"prediction_id": pid, "label": "refund"},
            headers=seeded.headers(role),
        )
        assert response.status_code == 201


def test_a_skipped_item_leaves_the_queue(make_client: Any, seeded: Any) -> None:
    client = make_client()
    item = client.get("/api/review/intent", headers=seeded.headers("viewer")).json()["items"][0]
    skipped = client.post(f"/api/review/items/{item['id']}/skip", headers=seeded.headers("labeler"))
    assert skipped.json() == {"id": item["id"], "status": "skipped"}
    ids = [
        i["id"]
        for i in client.get("/api/review/intent", headers=seeded.headers("viewer")).json()["items"]
    ]
    assert item["id"] not in ids
    missing = client.post("/api/review/items/999999/skip", headers=seeded.headers("labeler"))
    assert missing.status_code == 404


def test_feedback_of_an_unknown_prediction_is_404(make_client: Any, seeded: Any) -> None:
    response = make_client().get(
        "/api/predictions/424242/feedback", headers=seeded.headers("viewer")
    )
    assert response.status_code == 404
