"""The help centre of Northwind Outfitters: the demo knowledge base the offline AI answers from.

The policies are fictional but consistent with each other (one returns window, one refund
timeline, one set of support hours), so answers composed from different articles never
contradict each other. ``knowledge_seed`` loads them; admins edit them afterwards.
"""

from __future__ import annotations

from supportdesk.agent.models import KnowledgeArticle

# Things a customer names that say what the question is *about* but not which policy
# applies ("my backpack arrived ripped" is a damaged-item question whatever the product).
# Retrieval counts them at a fraction of their weight when the best article lacks them.
CATALOGUE_TEXT = """
backpack backpacks pack packs daypack rucksack bag bags duffel jacket jackets coat coats
parka vest fleece fleeces hoodie shirt shirts tee base layer pants trousers shorts
leggings socks gloves mittens hat beanie cap scarf boots boot shoes shoe sandals sneakers
trainers tent tents tarp hammock sleeping pad mat stove stoves pot mug bottle flask filter
headlamp lantern torch knife compass poles pole helmet harness rope carabiner kayak paddle
bike skis snowboard goggles sunglasses gps gear item items product products thing strap
straps buckle hood pocket pockets sleeve sleeves lace laces sole soles
small medium large xs xl xxl black white red blue green grey gray navy orange yellow
"""

ARTICLES: list[dict[str, str]] = [
    # Orders and shipping
    {
        "slug": "shipping-options-and-delivery-times",
        "title": "Shipping options, costs and delivery times",
        "body": (
            "Orders leave our warehouse within 1–2 business days. "
            "Standard shipping takes 5–7 business days with USPS or UPS Ground and costs "
            "$6.95, or is free on US orders over $75. "
            "Expedited shipping takes 2–3 business days with UPS and costs $14.95. "
            "Overnight shipping with FedEx arrives the next business day for $29.95 if you "
            "order by 1 p.m. Eastern, Monday to Friday. "
            "Delivery estimates start when the order ships, not when it is placed, and "
            "carriers do not deliver on public holidays."
        ),
        "tags": "shipping, delivery, how long, arrive, carrier, ups, usps, fedex, free shipping, "
        "cost, express, overnight, expedited, fast, when will my order arrive",
    },
    {
        "slug": "tracking-your-order",
        "title": "Tracking your order",
        "body": (
            "As soon as your order ships we email you a tracking number and link. "
            "You can also follow every parcel from Account → Orders, even if you checked out "
            "as a guest, by using Order lookup with your order number and email address. "
            "A new tracking number can take up to 24 hours to show its first scan, and tracking "
            "may not update while a parcel travels between depots. "
            "If an order ships in several packages, each package has its own tracking "
            "number. "
            "If tracking has not moved for 5 business days, contact us and we will open an "
            "investigation with the carrier."
        ),
        "tags": "track, tracking number, where is my order, order status, parcel, package, "
        "not moving, stuck, not updating, no updates, shipped, wismo",
    },
    {
        "slug": "international-shipping-and-customs",
        "title": "International shipping, duties and customs",
        "body": (
            "We ship to Canada, the United Kingdom, the European Union, Australia, New "
            "Zealand and Japan with DHL Express. "
            "International delivery takes 7–14 business days and costs a flat $24.95, or is "
            "free on orders over $200. "
            "For Canada, the UK and the EU, duties and import taxes are calculated and "
            "collected at checkout, so there is nothing more to pay on delivery. "
            "For Australia, New Zealand and Japan, any duties and taxes are charged by the "
            "carrier on delivery and are paid by the customer. "
            "Parcels sometimes wait in customs for a few days; tracking shows when they are "
            "released. "
            "International returns are accepted within the same 30 days, but return "
            "shipping is at your own cost."
        ),
        "tags": "international, abroad, overseas, worldwide, countries, canada, uk, europe, eu, "
        "australia, japan, customs, duties, import tax, import fees, duties included, vat, dhl, "
        "ship outside the us, stuck in customs, held at customs",
    },
    {
        "slug": "restricted-items-shipping",
        "title": "Items with shipping restrictions",
        "body": (
            "Some products are classed as hazardous materials by carriers. "
            "Camp stove fuel canisters, bear spray and spare lithium batteries ship by "
            "ground within the contiguous United States only. "
            "They cannot ship to Alaska, Hawaii, PO boxes, military APO/FPO addresses or "
            "outside the US, and they cannot go by expedited or overnight shipping. "
            "If your cart contains one of these items, checkout shows only the shipping "
            "options that are allowed. "
            "These items can still be bought for store pickup at any Northwind store."
        ),
        "tags": "hazmat, hazardous, fuel, gas canister, bear spray, batteries, lithium, "
        "restricted, alaska, hawaii, po box, apo, fpo, can't ship",
    },
    {
        "slug": "order-confirmation-email",
        "title": "I didn't receive my order confirmation email",
        "body": (
            "Order confirmation emails are sent within 15 minutes of checkout. "
            "Check your spam, junk or promotions folder, and search your inbox for "
            "'Northwind Outfitters'. "
            "If you mistyped your email address, your order is still placed: sign in and "
            "open Account → Orders, or use Order lookup with your order number. "
            "Please don't place the order a second time; if you are unsure whether it went "
            "through, contact us and we will check for you."
        ),
        "tags": "confirmation, receipt email, no email, didn't get email, order placed, "
        "did my order go through, spam, junk",
    },
    {
        "slug": "change-or-cancel-an-order",
        "title": "Changing or cancelling an order",
        "body": (
            "You can cancel an order or change its items yourself within 1 hour of placing "
            "it: open Account → Orders and choose Cancel order or Edit order. "
            "After that hour the order is with our warehouse team; contact us as soon as "
            "possible and we will try to stop it, but we cannot guarantee it before it "
            "ships. "
            "Once an order has shipped it can no longer be cancelled; you can return it "
            "free of charge within 30 days of delivery instead. "
            "A cancelled order is refunded in full to the original payment method, and the "
            "authorisation on your card is released within 3–5 business days."
        ),
        "tags": "cancel, cancellation, cancel my order, change order, edit order, modify, "
        "add item, remove item, wrong size ordered, mistake, changed my mind",
    },
    {
        "slug": "change-shipping-address",
        "title": "Updating the delivery address on an order",
        "body": (
            "Within 1 hour of placing an order you can edit the shipping address from "
            "Account → Orders → Edit order. "
            "After that, contact us before the order ships and we will update it if the "
            "warehouse has not packed it yet. "
            "Once the parcel has shipped, we can ask UPS or FedEx to redirect it to a new "
            "address, which usually adds 1–2 business days; USPS parcels cannot be "
            "redirected. "
            "We cannot change the destination country of an order after checkout. "
            "To change the default address for future orders, go to Account → Addresses."
        ),
        "tags": "address, change address, wrong address, shipping address, delivery address, "
        "moved, redirect, typo in address, update address",
    },
    {
        "slug": "backorders-and-pre-orders",
        "title": "Backorders and pre-orders",
        "body": (
            "Items marked Backorder or Pre-order show an estimated ship date on the product "
            "page and in your order confirmation. "
            "We do not charge your card for these items until they ship. "
            "The rest of your order ships straight away, and the later item follows at no "
            "extra shipping cost. "
            "If the estimated date moves by more than 2 weeks we email you, and you can "
            "cancel the item at any time before it ships from Account → Orders."
        ),
        "tags": "backorder, back order, pre-order, preorder, not in stock yet, ship date, "
        "when will it ship, estimated date, delayed item, charged",
    },
    {
        "slug": "restock-notifications",
        "title": "Out-of-stock items and restock alerts",
        "body": (
            "When a size or colour is sold out, choose it on the product page and press "
            "Notify me to get an email when it is back. "
            "Most items are restocked within 4–8 weeks, but some seasonal products do not "
            "return. "
            "Restock alerts are not a reservation and we cannot hold stock for individual "
            "customers. "
            "You can manage your alerts under Account → Communication preferences."
        ),
        "tags": "out of stock, sold out, restock, back in stock, notify me, available again, "
        "unavailable, size not available",
    },
    {
        "slug": "store-pickup",
        "title": "Buy online, pick up in store",
        "body": (
            "Store pickup is free at all 14 Northwind Outfitters stores. "
            "Choose Pick up in store at checkout; if the item is in stock at that store, "
            "your order is usually ready within 2 hours during opening hours. "
            "We email you when it is ready to collect, and we hold it for 7 days before "
            "cancelling and refunding it. "
            "Bring a photo ID and your order number; someone else can collect it if you add "
            "their name at checkout."
        ),
        "tags": "pickup, pick up, collect, click and collect, in store, store, shop, "
        "local store, bopis, ready for pickup, someone else, friend, family member",
    },
    # Delivery problems
    {
        "slug": "delivered-but-not-received",
        "title": "Tracking says delivered but the parcel isn't here",
        "body": (
            "Carriers sometimes mark a parcel as delivered shortly before it actually "
            "arrives, so please wait 48 hours after the delivered scan. "
            "Check around your property, with neighbours, your building's mailroom or front "
            "desk, and any safe place the carrier may have used. "
            "Also check that the shipping address on the order is correct. "
            "If it still hasn't turned up, contact us within 14 days of the delivered scan "
            "and we will open a trace with the carrier, which takes up to 5 business days. "
            "If the carrier cannot find it, we send a replacement or refund you in full."
        ),
        "tags": "delivered, not received, never arrived, missing package, missing parcel, "
        "stolen, lost package, porch, says delivered, not here, didn't get my order",
    },
    {
        "slug": "missing-item-in-package",
        "title": "An item is missing or wrong in my order",
        "body": (
            "Larger orders often ship in more than one package, so first check your "
            "shipping email, which lists how many packages are on the way. "
            "The packing slip in each box shows which items it contains. "
            "If an item is still missing after every package has arrived, contact us "
            "within 14 days of delivery with your order number. "
            "We will ship the missing item free of charge by expedited shipping, or refund "
            "it if it is no longer in stock. "
            "If we sent you the wrong item, size or colour, we ship the right one the same "
            "way and email you a prepaid label for the wrong one, which you have 30 days to "
            "send back."
        ),
        "tags": "missing item, item missing, not in the box, incomplete order, only part, "
        "forgot item, short shipped, partial delivery, wrong item, sent the wrong, "
        "received the wrong item, not what i ordered",
    },
    {
        "slug": "damaged-or-defective-items",
        "title": "Damaged or faulty items on arrival",
        "body": (
            "If something arrives damaged, faulty or not as described, report it within 14 "
            "days of delivery from Account → Orders → Report a problem. "
            "Please attach photos of the item, the fault and the shipping box. "
            "We send a free replacement or a full refund, whichever you prefer, including "
            "the original shipping cost. "
            "In most cases you don't need to send the damaged item back; if we need it for "
            "inspection, we email you a prepaid return label. "
            "Problems that appear after 14 days are handled under our warranty."
        ),
        "tags": "damaged, broken, defective, faulty, arrived broken, torn, ripped, crushed, "
        "doesn't work, not as described, dead on arrival, hole, tear",
    },
    # Returns, refunds, exchanges
    {
        "slug": "returns-policy",
        "title": "Returns: the 30-day return policy",
        "body": (
            "You can return most items within 30 days of delivery for a refund. "
            "Items must be unused and unwashed with the original tags attached; boots and "
            "shoes must be tried on indoors only and returned in their original box. "
            "Products marked Final sale cannot be returned. "
            "To start a return, go to Account → Orders, choose Return items, and print the "
            "free prepaid label for US orders; drop the parcel at any UPS location. "
            "You can also return online orders at any Northwind store. "
            "Gifts can be returned for store credit with the order number from the gift "
            "receipt."
        ),
        "tags": "return, returns, send back, return window, how long to return, return label, "
        "don't like, doesn't fit, unwanted, return policy, bring back, no longer want",
    },
    {
        "slug": "refund-timing",
        "title": "When will I get my refund?",
        "body": (
            "We process your refund within 3 business days of the return arriving at our "
            "warehouse, and we email you when it is done. "
            "Your bank or card issuer then takes 5–10 business days to show it on your "
            "statement. "
            "Refunds always go back to the original payment method; orders paid with a "
            "gift card are refunded to a new e-gift card. "
            "Original shipping costs are refunded only when the return is due to our error "
            "or a faulty item. "
            "Klarna purchases are refunded through Klarna, which adjusts your remaining "
            "payments."
        ),
        "tags": "refund, refunds, money back, reimbursed, credit, when will i be refunded, "
        "refund status, how long refund, haven't received refund",
    },
    {
        "slug": "exchanges",
        "title": "Exchanging an item for another size or colour",
        "body": (
            "Exchanges for a different size or colour of the same item are free within 30 "
            "days of delivery. "
            "Go to Account → Orders, choose Exchange, and pick the new size or colour. "
            "We ship the replacement as soon as the carrier scans your return parcel, so you "
            "don't have to wait for it to reach us. "
            "If you want a different product, return the original for a refund and place a "
            "new order. "
            "If the size you need is out of stock, we refund you instead."
        ),
        "tags": "exchange, swap, different size, different colour, color, too small, too big, too large, "
        "bigger, smaller, larger, wrong size, replace size",
    },
    # Products: warranty, repairs, care, sizing
    {
        "slug": "warranty",
        "title": "Northwind 2-year warranty",
        "body": (
            "Northwind-brand products are covered for 2 years from the purchase date "
            "against defects in materials and workmanship. "
            "Other brands are covered by their manufacturer's warranty, and we help you "
            "make the claim. "
            "The warranty does not cover normal wear and tear, accidents, improper care or "
            "alterations. "
            "To claim, fill in the warranty form from Account → Orders with your order "
            "number and photos of the defect. "
            "We reply within 5 business days with a free repair, a replacement, or store "
            "credit."
        ),
        "tags": "warranty, guarantee, covered, defect, manufacturing defect, broke after, "
        "stopped working, failed, seam, zipper broke, delaminated, claim",
    },
    {
        "slug": "repair-service",
        "title": "The Northwind repair service",
        "body": (
            "Our repair workshop fixes zippers, seams, torn fabric, down jacket tears, "
            "broken tent poles and worn-out boot soles, including on gear bought elsewhere. "
            "Request a repair from the Repairs page; we email a quote within 3 business "
            "days. "
            "Repairs start at a flat $15 for a patch and $35 for a zipper replacement, and "
            "resoling boots costs $85. "
            "Turnaround is usually 2–3 weeks plus shipping. "
            "Repairs covered by the warranty are free, and we send you a prepaid label."
        ),
        "tags": "repair, fix, mend, patch, zipper replacement, resole, resoling, tent pole, "
        "sew, repairs, workshop, rip, hole",
    },
    {
        "slug": "size-guide",
        "title": "Size guide for clothing",
        "body": (
            "Every product page has a size chart with measurements in inches and "
            "centimetres. "
            "Measure your chest, waist, hips and inseam over light clothing and compare "
            "them with the chart. "
            "If you are between sizes, size up if you want room for layers and size down "
            "for a close fit. "
            "Our technical jackets are cut to fit over a fleece. "
            "If something doesn't fit, you can exchange it for another size free of charge "
            "within 30 days."
        ),
        "tags": "size, sizing, size chart, fit, measurements, what size, true to size, small, "
        "medium, large, between sizes, runs small, runs large",
    },
    {
        "slug": "boot-and-shoe-sizing",
        "title": "Finding the right boot and shoe size",
        "body": (
            "Our hiking boots and trail shoes fit true to size in US sizing. "
            "Measure your feet in the afternoon, when they are at their largest, and use "
            "the foot-length chart on the product page. "
            "If you wear thick hiking socks or have wide feet, go up half a size or choose "
            "the wide version where one is offered. "
            "Try new boots on indoors with the socks you hike in; unworn footwear can be "
            "exchanged for another size free within 30 days."
        ),
        "tags": "boot size, shoe size, footwear, hiking boots, trail shoes, half size, wide, "
        "fit, narrow, toes, heel slip",
    },
    {
        "slug": "down-jacket-care",
        "title": "Caring for down jackets and sleeping bags",
        "body": (
            "Wash down gear only when it is dirty or has lost its loft, usually once or "
            "twice a season. "
            "Use a front-loading washing machine on a gentle cycle at 30 °C (86 °F) with a "
            "down-specific wash, never regular detergent or fabric softener. "
            "Tumble dry on low heat with two or three clean tennis balls for 2–3 hours, "
            "until no clumps are left. "
            "Store down loosely in a large breathable bag, not compressed in its stuff "
            "sack. "
            "Small holes can be closed with a repair patch; our repair service fixes larger "
            "tears."
        ),
        "tags": "down jacket, puffer, puffy, sleeping bag, wash, washing, clean, cleaning, "
        "dry, laundry, care instructions, loft, feathers",
    },
    {
        "slug": "waterproof-jacket-care",
        "title": "Caring for waterproof rain jackets",
        "body": (
            "Wash waterproof jackets and rain pants every 10–15 days of use, because dirt "
            "and sweat clog the breathable membrane. "
            "Close all zips, then machine wash at 30 °C (86 °F) with a technical wash; "
            "never use fabric softener or bleach. "
            "Tumble dry on low for 20 minutes, which also reactivates the water-repellent "
            "finish. "
            "When water stops beading on the fabric, restore the finish with a spray-on "
            "or wash-in reproofer. "
            "Store the jacket hanging, not compressed."
        ),
        "tags": "rain jacket, waterproof, shell, gore-tex, hardshell, rain pants, wash, "
        "clean, reproof, dwr, wetting out, not waterproof anymore, breathable, care",
    },
    {
        "slug": "tent-care",
        "title": "Caring for your tent",
        "body": (
            "Always dry your tent completely before storing it, or mildew can damage the "
            "coating within days. "
            "Clean it by hand with a sponge, cold water and a mild non-detergent soap; "
            "never put a tent in a washing machine or dryer. "
            "Store it loosely in a cool, dry place rather than tightly rolled in its stuff "
            "sack. "
            "Keep the zippers clean of sand and re-seal the seams every few seasons if "
            "water starts to come through. "
            "Broken poles can be replaced by our repair service."
        ),
        "tags": "tent, tents, camping, clean tent, mildew, mould, mold, seam sealing, "
        "waterproof, leaking, poles, storage, care",
    },
    {
        "slug": "boot-care",
        "title": "Caring for hiking boots",
        "body": (
            "After each hike, remove the insoles and laces and brush off dirt with a soft "
            "brush and water. "
            "Let boots dry at room temperature away from radiators, fires and direct "
            "sunlight, which crack leather and weaken the glue. "
            "Stuffing them with newspaper helps them dry faster. "
            "Re-waterproof leather boots with wax, and fabric boots with a spray-on "
            "treatment, at least once a season. "
            "When the tread wears down, our repair service can resole them."
        ),
        "tags": "boot care, clean boots, hiking boots, waterproofing, leather, wax, dry boots, "
        "wet boots, smell, insoles, care",
    },
    # Payments, discounts, gift cards
    {
        "slug": "payment-methods",
        "title": "Accepted payment methods",
        "body": (
            "We accept Visa, Mastercard, American Express, Discover, PayPal, Apple Pay, "
            "Google Pay and Northwind gift cards. "
            "Klarna lets you split orders between $50 and $1,000 into 4 interest-free "
            "payments. "
            "We authorise your card when you order and take the payment when the order "
            "ships. "
            "All prices are in US dollars; cards issued abroad work, but your bank may add "
            "a foreign transaction fee. "
            "We don't accept cash on delivery, cheques or cryptocurrency online."
        ),
        "tags": "payment, pay, credit card, debit card, paypal, apple pay, google pay, klarna, "
        "instalments, installments, buy now pay later, accepted cards, currency",
    },
    {
        "slug": "failed-payments",
        "title": "My payment was declined",
        "body": (
            "Payments are usually declined because the billing address or postcode doesn't "
            "match the one your bank has, the card has expired, or the bank's fraud check "
            "blocked it. "
            "Check the card details and billing address, then try again, or use another "
            "payment method such as PayPal. "
            "A declined attempt can leave a temporary authorisation hold on your account; "
            "your bank releases it within 3–5 business days and you are not charged. "
            "If your bank confirms the card is fine and it still fails, contact us. "
            "For your security, never send card numbers in chat or by email."
        ),
        "tags": "declined, payment failed, card declined, card rejected, won't go through, "
        "error at checkout, payment error, pending charge, authorisation hold, charged twice",
    },
    {
        "slug": "promo-codes",
        "title": "Using promo and discount codes",
        "body": (
            "Enter your code in the Promo code box at checkout before you pay; the discount "
            "shows in the order total. "
            "Only one promo code can be used per order, and codes cannot be combined with "
            "the student discount. "
            "Promo codes don't apply to gift cards or Trail Box subscriptions, and each "
            "code has an expiry date shown in the email it came in. "
            "If you forgot to apply a valid code, contact us within 7 days of your order "
            "and we will refund the difference once."
        ),
        "tags": "promo code, discount code, coupon, voucher, code not working, invalid code, "
        "sale, discount, offer, combine codes, two codes",
    },
    {
        "slug": "gift-cards",
        "title": "Gift cards",
        "body": (
            "Northwind gift cards come in amounts from $25 to $500, as e-gift cards or "
            "physical cards. "
            "E-gift cards are emailed to the recipient on the date you choose, and physical "
            "cards ship free. "
            "Gift cards never expire and have no fees; check a balance on the Gift cards "
            "page with the card number and PIN. "
            "They can be used online and in our stores, but not to buy other gift cards, "
            "and they cannot be exchanged for cash except where the law requires. "
            "A lost card can be replaced if you have the purchase receipt."
        ),
        "tags": "gift card, gift certificate, egift, e-gift card, balance, present, voucher, "
        "redeem, expire, lost gift card",
    },
    {
        "slug": "price-match",
        "title": "Price match and price adjustments",
        "body": (
            "If we lower the price of an item within 14 days of your purchase, we refund the "
            "difference once per item. "
            "We also match the current price of an identical, in-stock item on the website "
            "of an authorised US retailer. "
            "Price matching excludes marketplace sellers, clearance, bundles, coupon prices "
            "and Black Friday doorbusters. "
            "Ask in chat with a link to the lower price before or within 14 days after you "
            "buy."
        ),
        "tags": "price match, price drop, cheaper, lower price, price adjustment, price "
        "protection, competitor, amazon, went on sale, match price, now cheaper, bought, site",
    },
    {
        "slug": "student-discount",
        "title": "Student discount",
        "body": (
            "Students at colleges and universities get 15% off full-price items. "
            "Verify your enrolment on the Student discount page through our verification "
            "partner; it takes about 2 minutes. "
            "You then receive a personal code that works for 12 months, after which you "
            "verify again. "
            "The student discount cannot be combined with other promo codes and doesn't "
            "apply to gift cards or Trail Box."
        ),
        "tags": "student, students, college, university, school, education discount, "
        "student id, unidays, 15% off",
    },
    {
        "slug": "trail-rewards-loyalty",
        "title": "Trail Rewards loyalty points",
        "body": (
            "Trail Rewards is free to join and earns 1 point for every $1 you spend. "
            "Every 200 points become a $10 reward, which you can use on a future order. "
            "Points appear once the 30-day return window for an order has closed. "
            "Points expire after 12 months without any purchase. "
            "Members who spend $500 in a calendar year reach Summit status, with free "
            "expedited shipping and double points in their birthday month."
        ),
        "tags": "loyalty, points, rewards, trail rewards, member, membership, earn, redeem "
        "points, summit, reward certificate",
    },
    {
        "slug": "trail-box-subscription",
        "title": "Trail Box subscription",
        "body": (
            "Trail Box is our quarterly subscription box of hand-picked gear worth over "
            "$100, for $59 per box with free US shipping. "
            "Boxes ship in the first week of March, June, September and December. "
            "You can skip the next box or cancel the subscription at any time before the 15th "
            "of the month before a box ships, from Account → Subscriptions. "
            "Subscribers get 10% off everything else in the store. "
            "Items from a Trail Box can be returned within 30 days like any other order."
        ),
        "tags": "trail box, subscription, subscribe, box, quarterly, skip, pause, cancel "
        "subscription, monthly box, recurring charge",
    },
    {
        "slug": "business-and-bulk-orders",
        "title": "Business, team and bulk orders",
        "body": (
            "Our business team handles orders of 10 or more units of one item, and any order "
            "over $2,500. "
            "Volume pricing gives 10–20% off depending on quantity. "
            "We can embroider your logo on jackets and fleeces from 24 pieces, which adds "
            "3–4 weeks. "
            "Approved organisations can pay by invoice on net-30 terms, and we accept "
            "tax-exemption certificates. "
            "Request a quote with the Business orders form and we reply within 2 business "
            "days."
        ),
        "tags": "business, bulk, wholesale, corporate, team, group order, large order, "
        "company, logo, embroidery, quote, net 30, school group, club",
    },
    {
        "slug": "invoices-and-vat-receipts",
        "title": "Invoices and VAT receipts",
        "body": (
            "A PDF invoice is available from Account → Orders once your order has shipped; "
            "choose Download invoice. "
            "To have your company name and VAT number on it, enter them at checkout under "
            "Business purchase. "
            "Invoices for UK and EU orders show VAT separately, and US invoices show sales "
            "tax. "
            "If you need an invoice reissued with company details, contact us within 90 "
            "days of the order."
        ),
        "tags": "invoice, vat, receipt, vat number, tax invoice, company invoice, pdf, bill, "
        "expense, proof of purchase, sales tax",
    },
    # Account and privacy
    {
        "slug": "password-reset",
        "title": "Resetting your password",
        "body": (
            "Choose Forgot password? on the sign-in page and enter your account email; we "
            "send a reset link that is valid for 30 minutes. "
            "If the email doesn't arrive within a few minutes, check your spam folder. "
            "After 5 failed sign-in attempts, your account is locked for 15 minutes for "
            "security. "
            "If you created your account with Google or Apple, use that button to sign in "
            "instead of a password."
        ),
        "tags": "password, forgot password, reset, login, log in, sign in, can't log in, "
        "locked out, account locked, credentials",
    },
    {
        "slug": "two-factor-authentication",
        "title": "Two-factor authentication",
        "body": (
            "Turn on two-factor authentication under Account → Security; you can use an "
            "authenticator app or text messages. "
            "When you set it up, save the 10 one-time backup codes somewhere safe. "
            "If you lose your phone, sign in with a backup code and set up the new device. "
            "Without a backup code, contact us to verify your identity; restoring access "
            "takes 1–2 business days. "
            "Northwind staff will never ask you for a verification code."
        ),
        "tags": "two-factor, 2fa, mfa, authenticator, verification code, sms code, backup "
        "codes, lost phone, new phone, security",
    },
    {
        "slug": "email-preferences",
        "title": "Managing emails and text messages",
        "body": (
            "Every marketing email has an Unsubscribe link at the bottom. "
            "You can also choose exactly what you receive, such as the newsletter, sale "
            "alerts, restock alerts and text messages, under Account → Communication "
            "preferences. "
            "Changes take effect within 48 hours. "
            "Order, shipping and account security emails are always sent because they are "
            "about your orders."
        ),
        "tags": "email, emails, unsubscribe, newsletter, marketing, spam, too many emails, "
        "stop emails, text messages, sms, notifications, turn off, opt out",
    },
    {
        "slug": "privacy-data-and-account-deletion",
        "title": "Your personal data and deleting your account",
        "body": (
            "Under Account → Privacy you can download a copy of your personal data or "
            "delete your account, as provided by the GDPR and the CCPA. "
            "A data export is ready within 72 hours as a ZIP file, and the download link "
            "stays valid for 7 days. "
            "Account deletion is confirmed by email and completed within 30 days. "
            "We keep order records for 7 years because tax law requires it, but they are no "
            "longer linked to a profile. "
            "Deleting your account forfeits any Trail Rewards points and store credit."
        ),
        "tags": "privacy, gdpr, ccpa, personal data, data export, download my data, delete "
        "account, close account, erase, remove my information, data request",
    },
    {
        "slug": "contact-support",
        "title": "Contacting customer support and opening hours",
        "body": (
            "Chat is open 24/7: our AI assistant answers first and brings in a member of "
            "the team when needed. "
            "Our support team is available Monday to Friday from 8 a.m. to 8 p.m. Eastern "
            "and on weekends from 9 a.m. to 5 p.m. Eastern. "
            "You can call us on 1-800-555-0142 during those hours. "
            "Emails are answered within 1 business day. "
            "Having your order number ready, which starts with NW, helps us help you faster."
        ),
        "tags": "contact, support, customer service, hours, opening hours, phone, call, "
        "email us, phone number, help, open, weekend, saturday, sunday",
    },
]


# Each article's category: a topic of the default SUPPORTDESK_TOPICS (routing without a
# classifier model takes a message's topic from its best-matching article).
CATEGORIES: dict[str, str] = {
    **dict.fromkeys(
        (
            "order-confirmation-email",
            "change-or-cancel-an-order",
            "backorders-and-pre-orders",
            "restock-notifications",
            "missing-item-in-package",
            "business-and-bulk-orders",
        ),
        "orders",
    ),
    **dict.fromkeys(
        (
            "shipping-options-and-delivery-times",
            "tracking-your-order",
            "international-shipping-and-customs",
            "restricted-items-shipping",
            "change-shipping-address",
            "store-pickup",
            "delivered-but-not-received",
        ),
        "shipping",
    ),
    **dict.fromkeys(
        (
            "damaged-or-defective-items",
            "returns-policy",
            "refund-timing",
            "exchanges",
            "warranty",
            "repair-service",
        ),
        "returns",
    ),
    **dict.fromkeys(
        (
            "payment-methods",
            "failed-payments",
            "promo-codes",
            "gift-cards",
            "price-match",
            "student-discount",
            "trail-box-subscription",
            "invoices-and-vat-receipts",
        ),
        "billing",
    ),
    **dict.fromkeys(
        (
            "trail-rewards-loyalty",
            "password-reset",
            "two-factor-authentication",
            "email-preferences",
            "privacy-data-and-account-deletion",
        ),
        "account",
    ),
    **dict.fromkeys(
        (
            "size-guide",
            "boot-and-shoe-sizing",
            "down-jacket-care",
            "waterproof-jacket-care",
            "tent-care",
            "boot-care",
        ),
        "product",
    ),
}


def knowledge_seed() -> int:
    """Create the articles of ``ARTICLES`` that don't exist yet; return how many were created.

    Idempotent and conservative: an article is matched by slug and never updated, so an
    admin's edits (or an article an admin unpublished) survive every re-seed. An article
    an admin *deleted* comes back with the next seed (``make run`` seeds at every start):
    unpublish an article to retire it.
    """
    existing = set(
        KnowledgeArticle.objects.filter(slug__in=[a["slug"] for a in ARTICLES]).values_list(
            "slug", flat=True
        )
    )
    missing = [
        KnowledgeArticle(**article, category=CATEGORIES.get(article["slug"], ""))
        for article in ARTICLES
        if article["slug"] not in existing
    ]
    # ignore_conflicts: two seeders racing (two processes starting together) must not fail.
    KnowledgeArticle.objects.bulk_create(missing, ignore_conflicts=True)
    if missing:
        # bulk_create sends no post_save: tell this process's search index directly.
        from supportdesk.agent import knowledge

        knowledge.clear_cache()
    return len(missing)
