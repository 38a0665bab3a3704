"""Flask extensions, created unbound here so blueprints can import them without the app."""

from flask_limiter import Limiter
from flask_limiter.util import get_remote_address
from flask_wtf import CSRFProtect

csrf = CSRFProtect()
# Storage from the app's RATELIMIT_STORAGE_URI (memory by default: counted per process).
limiter = Limiter(key_func=get_remote_address)
