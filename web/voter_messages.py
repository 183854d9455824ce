"""The core's messages a voter can meet, listed so that gettext extraction (pybabel) finds them.

Core messages stay English clauses (they are log lines and API fields too); the web layer
translates them at the last moment (``gettext(error.message)``), so each must be here
verbatim. A message with a value inside it (e.g. an election's title) is not translated.
"""


def _(text: str) -> str:
    return text


MESSAGES = (
    _('the form expired or did not come from this site; reload the page and try again'),
    _('this voting code is not valid for this election; check it and try again'),
    _('there is nothing at this address'),
    _('there is no such election'),
    _('there is no ballot with this id in this election'),
    _('this voting code has already been used'),
    _('the poll for this election is not open'),
    _('the selections do not fit the ballot'),
    _('too many requests; wait a little and try again'),
    _('something went wrong on our side; please try again later'),
    _('the signing hardware is unavailable; nothing was recorded, please try again shortly'),
    _('your ballot is stored, but its signed receipt is not ready yet; submit again in a few seconds to get your receipt'),
    _('the service cannot take ballots right now'),
    _('a voting code has 17 letters and digits; check that you typed all of it'),
    _('a voting code has only digits and the letters A to Z (but no U); check for a mistyped character'),
    _('this code has a typo: one of its characters does not match the others; check each character against your voting form'),
    _('this voting code has already been used by post'),
    _('this voting code has already been used online'),
    _('this voting code has already been used online for a different ballot'),
    _('the poll for this election has not opened yet'),
    _('the poll for this election has closed'),
    _('please correct the choices marked below'),
    _('the tally has not been signed yet'),
    _('the election record is published once the tally is signed'),
    _('the election record is being prepared; try again in a few seconds'),
    _('your voting session has ended (it lasts 30 minutes); please enter your code again'),
    _('the ballot form sent an option this election does not have'),
    _('this ballot has too many choices to be filled in without JavaScript; turn JavaScript on, or vote by post'),
)
