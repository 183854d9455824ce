// The receipt page: on a device that can share (most phones), a "Save or share" button that
// hands the receipt's tracker and its verification link to the phone's share sheet (notes,
// messages, e-mail to oneself). Nothing here carries a choice: the receipt has none.
const actions = document.getElementById("receipt-actions");
const button = document.getElementById("share-receipt");
if (actions && button && navigator.share) {
  const { title, tracker, url } = actions.dataset;
  button.hidden = false;
  button.addEventListener("click", () => {
    navigator.share({ title: `Ballot receipt: ${title}`, text: `My ballot tracker: ${tracker}`, url })
      .catch(() => {}); // the voter closed the share sheet: nothing to do
  });
}
