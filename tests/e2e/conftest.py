import pytest


@pytest.fixture
def csp_violations(page):
    """Every script or style the browser refused because of the policy, as the console says."""
    refused = []
    page.on(
        "console",
        lambda message: (
            refused.append(message.text) if "Content Security Policy" in message.text else None
        ),
    )
    return refused
