"""Issue 22: no framework or HTTP wording reaches a user; a lost session says what to do."""

from __future__ import annotations

from tests.conftest import sign_in


def _signed_out_post(client, headers):
    # A form left open while the session ended: the browser still sends its old token, but the
    # session that token belonged to is gone.
    return client.post(
        "/service",
        data={"service_id": "1", "csrf_token": "from-the-old-page"},
        headers=headers,
        csrf=False,
    )


def test_a_lost_session_tells_scripts_the_session_ended_in_plain_words(client):
    response = _signed_out_post(client, {"HX-Request": "true", "X-CSRFToken": "from-the-old-page"})
    assert response.status_code == 401
    body = response.get_json()
    assert body["error"] == "signed_out"
    assert body["sign_in"] == "/auth/sign-in"
    assert "session has ended" in body["reason"]
    assert "kept on this device" in body["reason"]
    assert "sign in again" in body["reason"]
    assert "CSRF" not in body["reason"] and "token" not in body["reason"]


def test_a_lost_session_on_a_plain_form_says_to_sign_in_again(client):
    response = client.post(
        "/service",
        data={"service_id": "1", "csrf_token": "from-the-old-page"},
        headers={"Referer": "http://localhost/patients/5/episodes/7"},
        csrf=False,
    )
    assert response.status_code == 400
    html = response.get_data(as_text=True)
    assert "Your session has ended" in html
    assert 'href="/auth/sign-in?next=/patients/5/episodes/7"' in html
    assert "CSRF" not in html and "token is missing" not in html


def test_a_lost_session_never_sends_the_user_to_another_site(client):
    response = client.post(
        "/service",
        data={"service_id": "1"},
        headers={"Referer": "https://elsewhere.example/x"},
        csrf=False,
    )
    html = response.get_data(as_text=True)
    assert 'href="/auth/sign-in"' in html


def test_an_expired_form_of_a_signed_in_user_is_plain_too(client, make_service, make_user):
    sign_in(client, make_user(services=[make_service()]))
    scripted = client.post(
        "/service",
        data={"service_id": "1", "csrf_token": "stale"},
        headers={"HX-Request": "true", "X-CSRFToken": "stale"},
        csrf=False,
    )
    assert scripted.status_code == 400
    assert scripted.get_json() == {
        "error": "csrf",
        "reason": "The form had expired. It is being sent again with a fresh one.",
    }
    page = client.post("/service", data={"service_id": "1", "csrf_token": "stale"}, csrf=False)
    html = page.get_data(as_text=True)
    assert "The form had expired" in html
    assert "CSRF" not in html


def test_stock_http_wording_never_shows(signed_in):
    client, _user, _service = signed_in()
    wrong_method = client.delete("/")
    assert wrong_method.status_code == 405
    html = wrong_method.get_data(as_text=True)
    assert "This could not be done" in html
    assert "Method Not Allowed" not in html and "The method is not allowed" not in html
    assert "nhsuk-header" in html
