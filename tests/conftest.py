import sys
from pathlib import Path

import numpy as np
import pytest

sys.path.insert(0, str(Path(__file__).parent))


@pytest.fixture
def rng():
    return np.random.default_rng(12345)


def orthonormal_centred(rng, n, k):
    """k orthonormal, zero-mean vectors of length n (columns)."""
    z = rng.standard_normal((n, k))
    z -= z.mean(axis=0)
    q, _ = np.linalg.qr(z)
    return q


def related_pair(rng, n=3000, a=12, b=9, shared=6, noise=0.5):
    """Two representations sharing `shared` latent directions, plus private noise.

    Each side sees the shared latents through its own noise of growing size, so the
    canonical correlations are distinct (PWCCA's variates are unique only then).
    """
    latent = rng.standard_normal((n, shared))
    blur = np.linspace(0.05, 1.0, shared)
    lx = latent + blur * rng.standard_normal((n, shared))
    ly = latent + blur * rng.standard_normal((n, shared))
    x = np.c_[lx, noise * rng.standard_normal((n, a - shared))] @ rng.standard_normal((a, a))
    y = np.c_[ly, noise * rng.standard_normal((n, b - shared))] @ rng.standard_normal((b, b))
    return x + rng.standard_normal(a), y + rng.standard_normal(b)


@pytest.fixture(scope="module")
def browser():
    """Debian's headless Chromium through selenium (the report and the docs site tests)."""
    import shutil

    webdriver = pytest.importorskip("selenium.webdriver")
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    if not (chromium and driver_path):
        pytest.skip("needs chromium and chromium-driver (apt-get install chromium chromium-driver)")
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--no-first-run",
                 "--disable-background-networking", "--disable-component-update", "--disable-sync",
                 "--window-size=1500,1200"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    yield driver
    driver.quit()
