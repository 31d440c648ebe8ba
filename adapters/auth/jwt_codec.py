"""Bearer tokens as JWTs (pyjwt), with the algorithm pinned on verification."""

from __future__ import annotations

from typing import Any

import jwt

from domain.errors import InvalidToken

REQUIRED_CLAIMS = ("sub", "plan", "iat", "exp", "jti", "kid")
ISSUER = "simutrador"


class JwtTokenCodec:
    def __init__(self, secret: str, algorithm: str = "HS256", leeway_seconds: int = 0) -> None:
        if len(secret.encode()) < 32:
            raise ValueError("the JWT secret must be at least 32 bytes")
        self._secret = secret
        self._algorithm = algorithm
        self._leeway = leeway_seconds

    def encode(self, claims: dict[str, Any]) -> str:
        return jwt.encode({**claims, "iss": ISSUER}, self._secret, algorithm=self._algorithm)

    def decode(self, token: str) -> dict[str, Any]:
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                self._secret,
                algorithms=[self._algorithm],  # pinned: never what the token header says
                issuer=ISSUER,
                leeway=self._leeway,
                options={"require": [*REQUIRED_CLAIMS, "iss"]},
            )
        except jwt.ExpiredSignatureError:
            raise InvalidToken("Token has expired; request a new one") from None
        except jwt.MissingRequiredClaimError as exc:
            raise InvalidToken(f"Token lacks the '{exc.claim}' claim") from None
        except jwt.InvalidSignatureError:
            raise InvalidToken("Token signature is invalid") from None
        except jwt.InvalidAlgorithmError:
            raise InvalidToken("Token uses a refused algorithm") from None
        except jwt.PyJWTError:
            raise InvalidToken("Token is malformed or invalid") from None
        if not isinstance(claims.get("sub"), str) or not isinstance(claims.get("kid"), str):
            raise InvalidToken("Token claims have the wrong types")
        for claim in ("iat", "exp"):
            # pyjwt reads these with int(), so "9999999999" (a string) would pass its checks;
            # NaN and infinity it refuses itself.
            value = claims[claim]
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise InvalidToken(f"Token claim '{claim}' is not a number")
        return claims
