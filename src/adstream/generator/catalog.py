"""The simulated ad market: campaigns, ads, publishers and audience mixes, drawn from the seed."""

from dataclasses import dataclass
from typing import Final

import numpy as np
import numpy.typing as npt

N_CAMPAIGNS: Final = 200
N_PUBLISHERS: Final = 400
ADS_PER_CAMPAIGN: Final = (3, 12)

AD_TYPES: Final = ("banner", "native", "video", "interstitial")
AD_TYPE_SHARE: Final = (0.45, 0.25, 0.18, 0.12)
# CPM bid prices are log-normal per ad type: (median USD, sigma). Video and interstitial tails
# supply the premium (> 50 USD CPM) inventory, a few percent of impressions.
BID_PRICE_BY_AD_TYPE: Final = ((2.5, 0.6), (6.0, 0.6), (18.0, 0.8), (12.0, 0.8))
CTR_MEDIAN: Final = 0.025
CTR_SIGMA: Final = 0.5
CTR_RANGE: Final = (0.003, 0.09)

# (JSON fragment for device_type and platform, share). Raw platform spellings vary in case and
# whitespace as they do in real bid streams; some records carry null or no platform at all.
PLATFORM_FRAGMENTS: Final = (
    (',"device_type":"phone","platform":"iOS"', 0.16),
    (',"device_type":"phone","platform":"android"', 0.18),
    (',"device_type":"phone","platform":"mobile"', 0.08),
    (',"device_type":"phone","platform":"Smartphone"', 0.04),
    (',"device_type":"tablet","platform":"tablet"', 0.07),
    (',"device_type":"tablet","platform":" Tablet "', 0.02),
    (',"device_type":"desktop","platform":"desktop"', 0.15),
    (',"device_type":"desktop","platform":"web"', 0.10),
    (',"device_type":"desktop","platform":"Laptop"', 0.03),
    (',"device_type":"tv","platform":"CTV"', 0.05),
    (',"device_type":"tv","platform":"connected_tv"', 0.03),
    (',"device_type":"tv","platform":"tv"', 0.02),
    (',"device_type":"wearable","platform":"smartwatch"', 0.02),
    (',"device_type":null,"platform":null', 0.02),
    ("", 0.03),
)
GEO_FRAGMENTS: Final = (
    (',"geo_location":"US"', 0.35),
    (',"geo_location":"IN"', 0.10),
    (',"geo_location":"GB"', 0.08),
    (',"geo_location":"DE"', 0.07),
    (',"geo_location":"BR"', 0.06),
    (',"geo_location":"JP"', 0.05),
    (',"geo_location":"FR"', 0.05),
    (',"geo_location":"CA"', 0.04),
    (',"geo_location":"MX"', 0.04),
    (',"geo_location":"AU"', 0.03),
    (',"geo_location":"ES"', 0.03),
    (',"geo_location":"IT"', 0.03),
    (',"geo_location":"KR"', 0.03),
    (',"geo_location":"NL"', 0.02),
    ("", 0.02),
)

Strings = npt.NDArray[np.object_]
Floats = npt.NDArray[np.float64]
Ints = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Catalog:
    """Who advertises where: ids as ready-to-print strings, popularity as probabilities."""

    campaign_ids: Strings
    campaign_share: Floats
    campaign_ctr: Floats
    campaign_first_ad: Ints
    campaign_ad_count: Ints
    ad_ids: Strings
    ad_type: Ints
    publisher_ids: Strings
    publisher_share: Floats

    @property
    def mean_ctr(self) -> float:
        """Click-through rate expected over the campaign mix."""
        return float(self.campaign_share @ self.campaign_ctr)


def zipf_shares(count: int, exponent: float) -> Floats:
    """Skewed popularity: the k-th most popular gets a share proportional to 1 / k^exponent."""
    weights = 1.0 / np.arange(1, count + 1) ** exponent
    return np.asarray(weights / weights.sum(), dtype=np.float64)


def build_catalog(rng: np.random.Generator) -> Catalog:
    """Draw the market from `rng`: deterministic for a seed."""
    ad_counts = rng.integers(ADS_PER_CAMPAIGN[0], ADS_PER_CAMPAIGN[1] + 1, N_CAMPAIGNS)
    first_ad = np.concatenate(([0], np.cumsum(ad_counts)[:-1]))
    n_ads = int(ad_counts.sum())
    ctr = np.clip(rng.lognormal(np.log(CTR_MEDIAN), CTR_SIGMA, N_CAMPAIGNS), *CTR_RANGE)
    return Catalog(
        campaign_ids=np.array([f"cmp-{i:04d}" for i in range(N_CAMPAIGNS)], dtype=object),
        campaign_share=zipf_shares(N_CAMPAIGNS, 1.1),
        campaign_ctr=ctr,
        campaign_first_ad=first_ad.astype(np.int64),
        campaign_ad_count=ad_counts.astype(np.int64),
        ad_ids=np.array([f"ad-{i:05d}" for i in range(n_ads)], dtype=object),
        ad_type=rng.choice(len(AD_TYPES), n_ads, p=AD_TYPE_SHARE).astype(np.int64),
        publisher_ids=np.array([f"pub-{i:04d}" for i in range(N_PUBLISHERS)], dtype=object),
        publisher_share=zipf_shares(N_PUBLISHERS, 1.0),
    )
