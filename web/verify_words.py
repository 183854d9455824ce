"""The words the verification page's script writes, listed for gettext extraction.

``verify-page.js`` looks each English text up in the page's ``data-words`` (this list,
translated); ``{name}`` is a value filled in by the script. The checks' own detailed
reasons (from ``static/js/verify/``) stay English and are marked ``lang="en"``.
"""


def _(text: str) -> str:
    return text


WORDS = (
    _("The election's public keys"), _("The receipt"), _("The signature on the log checkpoint"), _("Your ballot"),
    _("Your ballot is in the log"), _("The latest signed checkpoint"), _("The log has only grown since"),
    _("Counted in the signed tally"),
    _("Passed"), _("Failed"), _("Not yet"), _("Not checked"), _("Checking…"),
    _("This receipt did not pass the check. {reason}"), _("One of the checks below failed."),
    _("The election's keys could not be read, so nothing could be checked. Ask the election officials for help."),
    _("This is not a receipt this page can read. Check that you pasted or opened the whole receipt file."),
    _("The receipt was not signed by this election's key. It may have been changed, or it may be from another "
      "election."),
    _("The ballot in this receipt is not one this page can read. The receipt may have been changed."),
    _("Your ballot is not in the election's log at the place this receipt gives. The receipt may have been changed."),
    _("The election's latest signed log could not be checked."),
    _("The election's log has changed in a way it never should (it may only grow). Tell the election officials."),
    _("Your ballot could not be found in the signed count. Tell the election officials."),
    _("The election's log on this server does not match your QR code."),
    _("Nothing could be checked: the election's keys are missing."),
    _("The receipt could not be loaded."),
    _("This browser could not finish the check."),
    _("Your ballot is in the log the election's key signed. Now checking the log since then…"),
    _("Your ballot is in the log the election's key signed. Whether the log has only grown since could not be "
      "checked now."),
    _("Verified: your ballot is in the log, the log has only grown since, and it is counted in the signed tally."),
    _("Verified: your ballot is in the log, and the log has only grown since your receipt."),
    _("Election"), _("Ballot tracker"), _("Ballot id"), _("Position in the log (leaf index)"), _("Cast"),
    _("by post (recorded by an official)"), _("online"), _("Your vote"),
    _("sealed: this receipt does not show how you voted. After the poll closes and the tally is signed, this page "
      "shows your ballot as it was opened."),
    _("No choice"), _("Counted as"),
    _("This browser opened your sealed ballot again with the secret the tally published, and got exactly this. "
      "Check that it is what you chose."),
    _("The tally could not count your sealed ballot (like a spoiled paper ballot); the reason is above."),
    _("Paste your receipt or open the receipt file first."),
)
