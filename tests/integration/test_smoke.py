def test_sign_in_page_renders(client):
    response = client.get("/auth/sign-in")
    assert response.status_code == 200
    assert b"Sign in to FLS Portal" in response.data


def test_signed_in_clinician_sees_home(signed_in):
    client, user, service = signed_in()
    response = client.get("/")
    assert response.status_code == 200
    assert service.name.encode() in response.data
