"""A small Open Referral UK directory on loopback, for the ORUK adapter and export tests."""

from __future__ import annotations

import copy

from flask import request


def _service(identifier, name, **fields):
    service = {
        "id": identifier,
        "name": name,
        "description": f"{name} in Mitcham.",
        "url": f"https://mitcham.example/{identifier}",
        "status": "active",
        "last_modified": "2026-11-01T10:00:00Z",
        "organization": {
            "id": "org-1",
            "name": "Mitcham Community Network",
            "website": "https://mitcham.example/",
        },
        "service_at_locations": [
            {
                "id": f"sal-{identifier}",
                "location": {
                    "id": "loc-1",
                    "location_type": "physical",
                    "name": "Mitcham Community Hall",
                    "latitude": 51.4034,
                    "longitude": -0.1661,
                    "addresses": [
                        {
                            "id": "a1",
                            "address_1": "1 London Road",
                            "city": "Mitcham",
                            "postal_code": "cr42aa",
                            "country": "GB",
                            "address_type": "physical",
                        }
                    ],
                    "accessibility": [
                        {"id": "x", "description": "Step-free entrance and an accessible toilet."}
                    ],
                },
            }
        ],
    }
    service.update(fields)
    return service


SHED = _service(
    "shed",
    "Mitcham Men's Shed",
    assured_date="2026-10-01",
    application_process="Just turn up, no need to book.",
    schedules=[
        {
            "id": "s1",
            "freq": "WEEKLY",
            "interval": 1,
            "byday": "TU,TH",
            "opens_at": "10:00:00",
            "closes_at": "13:00:00",
            "dtstart": "2026-01-06",
        }
    ],
    cost_options=[{"id": "c1", "amount": 0, "currency": "GBP"}],
    contacts=[{"id": "p1", "name": "Shed keeper", "phones": [{"id": "t", "number": '"020 8123 0000"'}]}],
    languages=[{"id": "l", "code": "en"}],
)
CARERS = _service(
    "carers",
    "Carers' Coffee Morning",
    schedules=[
        {
            "id": "s2",
            "freq": "MONTHLY",
            "byday": "1WE",
            "opens_at": "10:30",
            "closes_at": "12:00",
            "valid_from": "2026-02-04",
        }
    ],
    cost_options=[{"id": "c2", "amount": 2.5, "option": "Pay what you can"}],
)
CLOSED = _service("lunch", "Old Lunch Club", status="defunct")


class Directory:
    """A small Open Referral API: two services a page, ``modified_after`` honoured or not."""

    def __init__(self, site, services):
        self.services = {s["id"]: copy.deepcopy(s) for s in services}
        self.honours_modified_after = True
        self.url = site.handler("/directory/services", self.listing)
        site.handler("/directory/services/shed", lambda: self.detail("shed"))
        site.handler("/directory/services/carers", lambda: self.detail("carers"))
        site.handler("/directory/services/lunch", lambda: self.detail("lunch"))

    def listing(self):
        chosen = list(self.services.values())
        since = request.args.get("modified_after")
        if since and self.honours_modified_after:
            chosen = [s for s in chosen if s["last_modified"].replace("Z", "+00:00") >= since]
        number, size = int(request.args.get("page", 1)), 2
        pages = max(1, -(-len(chosen) // size))
        contents = [
            {k: v for k, v in s.items() if not isinstance(v, list)}
            for s in chosen[(number - 1) * size : number * size]
        ]
        return {
            "total_items": len(chosen),
            "total_pages": pages,
            "page_number": number,
            "size": len(contents),
            "first_page": number == 1,
            "last_page": number >= pages,
            "empty": not contents,
            "contents": contents,
        }

    def detail(self, identifier):
        return self.services.get(identifier, ("gone", 404))
