"""Typed errors of the protocol layer. All derive from `network.errors.SmpcError`."""

from __future__ import annotations

from network.errors import SmpcError


class ProtocolError(SmpcError):
    """A protocol could not run or a check failed; the job must abort and release nothing."""


class ParameterError(ProtocolError):
    """Parameters are inconsistent: threshold, party count, field size, fixed-point bits,
    a scheme or method a protocol does not serve. (The node's configuration file has its
    own error, mpc.node.config.NodeConfigError.)"""


#: deprecated name of ParameterError
ConfigError = ParameterError


class PartyIndexError(ParameterError):
    """A party index or Shamir x-coordinate is out of range, zero mod p, or duplicated."""


class ShapeMismatch(ProtocolError, ValueError):
    """Array shapes (or the parties' idea of them) disagree."""


class DomainError(ProtocolError, ValueError):
    """A value is not an element of the domain: wrong dtype, non-canonical field element."""


class InputRangeError(DomainError):
    """A plaintext input is NaN, infinite, or outside the representable fixed-point range."""


class InputRangeRefusedError(InputRangeError):
    """An honest owner refused to input a value outside its declared range (malicious mode,
    issue 16): the owner finds it locally and, instead of its input, sends every party a
    typed refusal in the input protocol (protocols.malicious.chida18.input_unchecked with
    announce=True), so that every party raises this error naming the owner(s) (`owners`)
    and nothing is opened. A deviating owner is caught by the range check under MPC instead
    (InputRangeCheatingError, security.cheating_detected)."""

    code = "input.range"

    def __init__(self, message: str, *, owners: tuple[int, ...] = ()) -> None:
        super().__init__(message)
        self.owners = owners


class FixedPointOverflowError(ProtocolError):
    """An intermediate fixed-point value would leave the representable range."""


class ShareInconsistencyError(ProtocolError):
    """Shamir shares do not lie on one polynomial of the declared degree."""


class PreprocessingExhausted(ProtocolError):
    """The preprocessing source has no more items of the kind that was asked for."""


class PreprocessingUnsupported(PreprocessingExhausted):
    """The preprocessing source never supplies this kind of item (for its domain and scheme):
    a protocol asked for something `prep.supports(kind)` says is not there. A subclass of
    PreprocessingExhausted so that callers catching "no item" keep working; protocols never
    catch it to choose a path (they ask `supports` first)."""


class PreprocessingMismatch(ProtocolError):
    """Parties asked the preprocessing source for different items in the same position."""


class SessionAbortedError(ProtocolError):
    """The session aborted after an earlier failure; it cannot be used again."""


class StorageIntegrityError(ProtocolError):
    """Stored state (preprocessing, cursors) failed an integrity check at load: tampered,
    truncated, from another party or session, of another domain or kind, or too permissive."""


class MaliciousUnsupportedError(ParameterError):
    """`security="malicious"` was asked for a protocol, scheme or setting that has no
    maliciously secure version yet; raised instead of silently running semi-honest."""

    code = "security.unsupported"


class CheatingDetectedError(ProtocolError):
    """A malicious-security check failed: some party deviated from the protocol. The job
    aborts on every honest party and releases nothing; `check` names the failed check (never
    the values)."""

    code = "security.cheating_detected"

    def __init__(self, message: str, *, check: str | None = None) -> None:
        super().__init__(message)
        self.check = check


class SessionMismatch(ShapeMismatch):
    """Secret values of different sessions (or parties, or domains) are combined."""
