"""Embedded name, variant and street lists for the synthetic borough.

Written for this project (no Faker, no downloaded lists). Names are grouped by broad naming tradition so
that a family's given names and surname fit together, and each list is in rough order of frequency in
England and Wales (or, for the smaller traditions, among London residents of that heritage): the generator
weights by rank. The mix of traditions reflects a diverse inner-London borough such as Kensington and
Chelsea, including its Moroccan, Portuguese, Filipino, Somali and Eritrean communities.

Every string here must encode in Windows-1252, because one source system (housing) exports in that code page;
``tests/unit/test_synthetic.py`` checks it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final


def _split(text: str) -> tuple[str, ...]:
    """Comma-separated, newline-wrapped lists keep this file readable; spaces inside a name are kept."""
    return tuple(item.strip() for item in text.replace("\n", ",").split(",") if item.strip())


@dataclass(frozen=True)
class Tradition:
    """A naming tradition: its share of families and its given-name and surname lists (most common first)."""

    name: str
    share: float
    female: tuple[str, ...]
    male: tuple[str, ...]
    surnames: tuple[str, ...]


BRITISH_IRISH: Final = Tradition(
    name="british_irish",
    share=0.53,
    female=_split("""
        Olivia, Amelia, Isla, Ava, Emily, Sophia, Grace, Mia, Poppy, Ella, Lily, Evie, Isabella, Sophie,
        Charlotte, Freya, Jessica, Daisy, Florence, Alice, Matilda, Ruby, Phoebe, Scarlett, Chloe, Holly,
        Lucy, Eleanor, Harriet, Imogen, Hannah, Emma, Sarah, Laura, Rebecca, Rachel, Katherine, Elizabeth,
        Victoria, Samantha, Jennifer, Nicola, Claire, Helen, Louise, Joanne, Michelle, Lisa, Karen, Amanda,
        Julie, Susan, Margaret, Patricia, Deborah, Catherine, Jane, Caroline, Alison, Anne, Mary,
        Jacqueline, Angela, Tracey, Kelly, Natalie, Gemma, Stacey, Danielle, Abigail, Zoe, Megan, Bethany,
        Georgia, Amy, Leah, Jade, Paige, Shannon, Courtney, Kayleigh, Siobhan, Aoife, Niamh, Ciara, Sian,
        Bronwen, Rhiannon, Fiona, Eilidh, Kirsty, Heather, Chantelle, Shanice, Marcia, Beverley, Jasmine,
        Maisie, Willow, Rosie, Esme, Zara, Nancy, Violet, Elsie, Mabel, Edith, Beatrice, Ivy, Penelope,
        Clementine, Arabella, Tabitha, Octavia, Philippa, Camilla, Henrietta, Georgina, Lucinda
    """),
    male=_split("""
        Oliver, George, Noah, Arthur, Harry, Leo, Jack, Charlie, Oscar, Jacob, Henry, Thomas, Freddie,
        Alfie, Theo, William, Theodore, Archie, Joshua, Alexander, James, Isaac, Edward, Lucas, Tommy,
        Finley, Max, Logan, Ethan, Mason, Harrison, Samuel, Daniel, Benjamin, Joseph, Jake, Luke, Matthew,
        Ryan, Adam, Liam, Callum, Connor, Jamie, Lewis, Nathan, Kieran, Dylan, Jordan, Aaron, Michael,
        David, Christopher, Andrew, Mark, Paul, Richard, Robert, John, Peter, Stephen, Anthony, Simon, Ian,
        Gary, Martin, Neil, Stuart, Darren, Craig, Lee, Wayne, Kevin, Jason, Dean, Scott, Barry, Keith,
        Graham, Colin, Brian, Philip, Nicholas, Jonathan, Timothy, Rupert, Hugo, Sebastian, Felix, Rory,
        Angus, Hamish, Dominic, Patrick, Sean, Ciaran, Declan, Owen, Rhys, Gareth, Dafydd, Tyrone, Marcus,
        Delroy, Leroy, Winston, Clive, Trevor, Desmond, Charles, Gabriel, Reuben, Elliot, Toby, Jasper
    """),
    surnames=_split("""
        Smith, Jones, Williams, Taylor, Brown, Davies, Evans, Wilson, Thomas, Johnson, Roberts, Robinson,
        Thompson, Wright, Walker, White, Edwards, Hughes, Green, Hall, Lewis, Harris, Clarke, Jackson, Wood,
        Turner, Martin, Cooper, Hill, Ward, Morris, Moore, Clark, Lee, King, Baker, Harrison, Morgan, Allen,
        James, Scott, Phillips, Watson, Davis, Parker, Price, Bennett, Young, Griffiths, Mitchell, Kelly,
        Cook, Carter, Richardson, Bailey, Collins, Bell, Shaw, Murphy, Miller, Cox, Richards, Marshall,
        Anderson, Simpson, Ellis, Adams, Wilkinson, Foster, Chapman, Powell, Webb, Rogers, Gray, Mason,
        Hunt, Holmes, Palmer, Campbell, Mills, Barnes, Knight, Lloyd, Butler, Russell, Barker, Fisher,
        Stevens, Jenkins, Murray, Dixon, Harvey, Graham, Pearson, Fletcher, Walsh, Gibson, Howard, Andrews,
        Stewart, Elliott, Reynolds, Saunders, Payne, Fox, Ford, Pearce, Day, Brooks, West, Lawrence, Cole,
        Atkinson, Bradley, Spencer, Gill, Dawson, Ball, Burton, O'Brien, Watts, Rose, Booth, Perry, Ryan,
        Grant, Wells, Armstrong, Francis, Rees, Hayes, Hart, Hudson, Newman, Barrett, Webster, Hunter,
        Gregory, Carr, Lowe, Page, Marsh, Riley, Dunn, Woods, Parsons, Berry, Stone, Reid, Holland, Hawkins,
        Harding, Porter, Robertson, Newton, Oliver, Reed, Kennedy, Williamson, Bird, Gardner, Dean, Lane,
        Cooke, Bates, Henderson, Parry, Burgess, Bishop, Walton, Burns, Nicholson, Shepherd, Ross, Cross,
        Long, Freeman, Warren, Nicholls, Hamilton, Byrne, Sutton, McDonald, Yates, Hodgson, Robson, Curtis,
        Hopkins, O'Connor, Harper, Coleman, Watkins, Moss, McCarthy, Chambers, O'Neill, Griffin, Sharp,
        Hardy, Wheeler, Potter, Osborne, Johnston, Gordon, Doyle, Wallace, George, Jordan, Hutchinson, Rowe,
        Burke, May, Pritchard, Gilbert, Willis, Higgins, Read, Miles, Stevenson, Stephenson, Hammond,
        Arnold, Buckley, Walters, Hewitt, Barber, Nelson, Slater, Austin, Sullivan, Whitehead, Mann, Frost,
        Lambert, Stephens, Blake, Lynch, Goodwin, Barton, Woodward, Thomson, Cunningham, Quinn, Barnett,
        Baxter, Clayton, Nash, Greenwood, Jennings, Holt, Kemp, Poole, Gallagher, Bond, Stokes, Tucker,
        Davidson, Fowler, Heath, Norman, Middleton, Lawson, Banks, French, Stanley, Jarvis, Gibbs, Ferguson,
        Hayward, Carroll, Farmer, Dennis, MacKenzie, McLaughlin, O'Sullivan, Fitzgerald, Ashby-Clarke,
        Vaughan-Thomas, Bowen-Jones, Heathcote-Drummond, Campbell-Grant, Forsyth
    """),
)

EUROPEAN: Final = Tradition(
    name="european",
    share=0.12,
    female=_split("""
        Maria, Ana, Sofia, Inês, Beatriz, Mariana, Catarina, Joana, Carla, Rita, Lucía, Carmen, Elena,
        Laura, Paula, Marta, Isabel, Pilar, Rocío, Giulia, Francesca, Chiara, Alessandra, Valentina,
        Federica, Silvia, Camille, Chloé, Léa, Manon, Juliette, Amélie, Élodie, Céline, Margaux, Anna,
        Katarzyna, Agnieszka, Magdalena, Joanna, Monika, Natalia, Aleksandra, Zuzanna, Ioana, Andreea,
        Hanna, Lena, Ingrid, Astrid, Eva, Irene, Dimitra, Eleni, Zoë, Sophie, Klara, Teresa
    """),
    male=_split("""
        João, Pedro, Tiago, Rui, Miguel, Diogo, Duarte, Gonçalo, Nuno, José, Carlos, Javier, Alejandro,
        Pablo, Jorge, Manuel, Sergio, Álvaro, Marco, Luca, Matteo, Giuseppe, Alessandro, Francesco, Lorenzo,
        Stefano, Pierre, Louis, Antoine, Julien, Nicolas, Mathieu, Étienne, Hugo, Piotr, Tomasz, Krzysztof,
        Pawel, Michal, Jakub, Lukasz, Marcin, Kamil, Mateusz, Andrei, Florin, Mihai, Dimitris, Nikos,
        Giorgos, Lars, Jan, Stefan, Matthias, Bruno, Ricardo, André
    """),
    surnames=_split("""
        Silva, Santos, Ferreira, Pereira, Oliveira, Costa, Rodrigues, Martins, Fernandes, Gonçalves, Gomes,
        Lopes, Marques, Alves, Almeida, Ribeiro, Pinto, Carvalho, Teixeira, Sousa, Da Silva, De Sousa, Dos
        Santos, Garcia, Fernández, González, Rodríguez, López, Martínez, Sánchez, Pérez, Gómez, Ruiz, Díaz,
        Moreno, Jiménez, Romero, Rossi, Russo, Ferrari, Esposito, Bianchi, Romano, Colombo, Ricci, Marino,
        Greco, Bruno, Gallo, Conti, De Luca, Bernard, Dubois, Petit, Durand, Leroy, Moreau, Lefebvre,
        Girard, Nowak, Kowalski, Wisniewski, Wojcik, Kowalczyk, Kaminski, Lewandowski, Zielinski, Szymanski,
        Wozniak, Dabrowski, Kozlowski, Jankowski, Mazur, Popescu, Ionescu, Popa, Dumitru, Müller, Schmidt,
        Schneider, Fischer, Weber, Papadopoulos, Georgiou, Nikolaidis, Andersson, Johansson, Nielsen,
        Jensen, Hansen, Van der Berg, Janssen
    """),
)

SOUTH_ASIAN: Final = Tradition(
    name="south_asian",
    share=0.08,
    female=_split("""
        Aisha, Ayesha, Zainab, Maryam, Amina, Hafsa, Sana, Nadia, Saira, Shabana, Nasreen, Farzana,
        Rukhsana, Shazia, Tahmina, Sumaiya, Priya, Anjali, Pooja, Neha, Kavita, Sunita, Anita, Deepa, Divya,
        Meera, Lakshmi, Simran, Harpreet, Gurpreet, Jaspreet, Manpreet, Anisha, Riya, Aaliyah, Inaya,
        Alisha, Hira, Fatima, Noor
    """),
    male=_split("""
        Muhammad, Mohammed, Ahmed, Ali, Hassan, Hussain, Imran, Bilal, Usman, Zain, Ayaan, Ibrahim, Yusuf,
        Omar, Hamza, Arjun, Rohan, Aarav, Vikram, Raj, Sanjay, Rahul, Amit, Anil, Sunil, Ravi, Deepak,
        Gurdeep, Jaswinder, Mandeep, Kamran, Faisal, Tariq, Shahid, Rashid, Abdul, Nasir, Asif, Aditya,
        Krishna
    """),
    surnames=_split("""
        Khan, Patel, Ahmed, Ali, Hussain, Begum, Singh, Kaur, Shah, Akhtar, Bibi, Iqbal, Rahman, Islam,
        Uddin, Miah, Chowdhury, Hossain, Sharma, Kumar, Gupta, Mistry, Desai, Mehta, Joshi, Rao, Reddy,
        Nair, Pillai, Malik, Mahmood, Butt, Qureshi, Siddiqui, Raja, Sandhu, Dhillon, Sidhu, Bhatti,
        Chaudhry, Mirza, Anwar, Aslam, Javed, Haq, Perera, Fernando, Jayawardena
    """),
)

ARAB_NORTH_AFRICAN: Final = Tradition(
    name="arab_north_african",
    share=0.10,
    female=_split("""
        Fatima, Khadija, Amina, Maryam, Nour, Yasmin, Layla, Salma, Hana, Sara, Rania, Zahra, Samira,
        Malika, Naima, Latifa, Hayat, Souad, Leila, Dina, Reem, Hiba, Iman, Asma, Rim, Ghada, Lina, Mona,
        Soraya, Houda, Aya, Ines
    """),
    male=_split("""
        Mohamed, Mohammed, Ahmed, Youssef, Omar, Ali, Hassan, Hussein, Mustafa, Ibrahim, Khalid, Karim,
        Rachid, Said, Abdelkader, Abdullah, Mahmoud, Tarek, Samir, Nabil, Adam, Amir, Rayan, Yassin, Bilal,
        Hamza, Walid, Jamal, Anas, Idris, Mehdi, Zakaria
    """),
    surnames=_split("""
        El Amrani, Benali, Bouzid, El Idrissi, Alaoui, Bennani, Haddad, Khoury, Mansour, Saleh, Hassan,
        Ibrahim, Abdallah, Mohamed, Ahmed, Ali, Aziz, Farouk, Nasser, Karim, Rahmani, Chaouch, Amrani, El
        Khatib, Al-Sayed, Hamdan, Ismail, Osman, Yousef, Darwish, Boukhris, Belkacem, Ouali, Tahiri, El
        Fassi, Ziani, Bakri, Jaber, Khalil, Najjar
    """),
)

WEST_AFRICAN: Final = Tradition(
    name="west_african",
    share=0.06,
    female=_split("""
        Blessing, Grace, Precious, Chioma, Ngozi, Adaeze, Amara, Chiamaka, Folake, Funmilayo, Temitope,
        Adwoa, Akosua, Abena, Ama, Efua, Esi, Yetunde, Bukola, Abimbola, Comfort, Mercy, Favour, Joy,
        Adaora, Ifeoma, Aminata, Fatmata, Isatu, Mariama
    """),
    male=_split("""
        Emmanuel, Samuel, David, Daniel, Michael, Oluwaseun, Olusegun, Babatunde, Adebayo, Chinedu, Emeka,
        Obinna, Chukwuemeka, Femi, Kwame, Kwabena, Kofi, Kojo, Yaw, Kwasi, Kweku, Ebenezer, Isaac, Joseph,
        Ibrahim, Mohamed, Sahr, Alhaji, Mustapha, Tobi
    """),
    surnames=_split("""
        Okafor, Okonkwo, Adeyemi, Adebayo, Oluwole, Ogunleye, Afolabi, Balogun, Eze, Nwosu, Okoro, Obi,
        Chukwu, Nwachukwu, Mensah, Owusu, Boateng, Asante, Osei, Appiah, Agyeman, Addo, Darko, Ofori, Amoah,
        Acheampong, Kamara, Sesay, Bangura, Conteh, Koroma, Turay, Jalloh, Bah, Diallo, Coker, Adeleke,
        Ajayi, Akinola, Oyelaran
    """),
)

EAST_AFRICAN: Final = Tradition(
    name="east_african",
    share=0.05,
    female=_split("""
        Hodan, Ayan, Fadumo, Hawa, Sahra, Ifrah, Idil, Hibo, Nimco, Sagal, Amal, Asha, Muna, Ubah, Filsan,
        Ruth, Selam, Saba, Meron, Tsion, Mahlet, Rahel, Senait, Hiwet, Yordanos, Hana
    """),
    male=_split("""
        Mohamed, Abdi, Abdirahman, Abdullahi, Ahmed, Hassan, Omar, Yusuf, Ismail, Mahad, Liban, Guled,
        Hamse, Farah, Mustafe, Dawit, Yonas, Samuel, Tesfaye, Bereket, Henok, Kidane, Tewodros, Abel,
        Biniam, Filmon, Robel
    """),
    surnames=_split("""
        Mohamed, Ali, Abdi, Hassan, Ahmed, Farah, Hussein, Omar, Yusuf, Ismail, Warsame, Jama, Osman, Aden,
        Egal, Dahir, Elmi, Nur, Said, Gedi, Abdullahi, Haile, Tesfaye, Gebremedhin, Tekle, Berhane, Kidane,
        Woldemariam, Mengistu, Bekele, Girma, Alemu, Tadesse, Desta
    """),
)

EAST_ASIAN: Final = Tradition(
    name="east_asian",
    share=0.06,
    female=_split("""
        Mei, Xin, Yan, Jing, Hui, Ying, Lin, Xiaoling, Jia, Min, Yuki, Aiko, Seo-yeon, Ji-woo, Linh, Mai,
        Maria, Maricel, Rowena, Rosario, Jocelyn, Marites, Cristina, Angelica, Joy, Sakura
    """),
    male=_split("""
        Wei, Jun, Hao, Jian, Ming, Lei, Yong, Tao, Kai, Hiroshi, Kenji, Takeshi, Min-jun, Ji-hoon, Minh,
        Tuan, Nam, Jose, Juan, Mark, Rodel, Romeo, Ramon, Jerome, Arnel, Ronald
    """),
    surnames=_split("""
        Chen, Wang, Li, Zhang, Liu, Huang, Lin, Wu, Zhou, Yang, Zhao, Xu, Sun, Ma, Zhu, Hu, Guo, He, Lam,
        Wong, Chan, Cheung, Leung, Ho, Ng, Tang, Lau, Yip, Nguyen, Tran, Le, Pham, Kim, Park, Choi, Tanaka,
        Sato, Suzuki, Watanabe, Santos, Reyes, Cruz, Bautista, Mendoza, Dela Cruz, Villanueva, Ramos,
        Aquino, Castillo
    """),
)

TRADITIONS: Final = (
    BRITISH_IRISH,
    EUROPEAN,
    SOUTH_ASIAN,
    ARAB_NORTH_AFRICAN,
    WEST_AFRICAN,
    EAST_AFRICAN,
    EAST_ASIAN,
)

#: Given-name variants a record may carry instead of the name on the birth record: diminutives (Bill for
#: William), spellings (Mohamed for Mohammed) and the same name without its accent, as older systems store it.
GIVEN_NAME_VARIANTS: Final[dict[str, tuple[str, ...]]] = {
    "William": ("Bill", "Will", "Billy"),
    "Elizabeth": ("Liz", "Beth", "Lizzie", "Eliza"),
    "Robert": ("Bob", "Rob", "Bobby"),
    "Margaret": ("Maggie", "Peggy", "Meg"),
    "Katherine": ("Kate", "Kathy", "Katie"),
    "Catherine": ("Cathy", "Kate", "Katherine"),
    "Jennifer": ("Jenny", "Jen"),
    "Michael": ("Mike", "Mick"),
    "Thomas": ("Tom", "Tommy"),
    "James": ("Jim", "Jimmy", "Jamie"),
    "Richard": ("Rich", "Rick", "Dick"),
    "Joseph": ("Joe", "Joey"),
    "Daniel": ("Dan", "Danny"),
    "Christopher": ("Chris",),
    "Alexander": ("Alex", "Sandy"),
    "Samuel": ("Sam", "Sammy"),
    "Benjamin": ("Ben", "Benji"),
    "Matthew": ("Matt",),
    "Anthony": ("Tony", "Ant"),
    "Edward": ("Ed", "Eddie", "Ted"),
    "Charles": ("Charlie", "Chas"),
    "Rebecca": ("Becky", "Becca"),
    "Victoria": ("Vicky", "Tori"),
    "Abigail": ("Abby", "Abi"),
    "Jessica": ("Jess", "Jessie"),
    "Samantha": ("Sam", "Sammy"),
    "Deborah": ("Debbie", "Deb"),
    "Susan": ("Sue", "Susie"),
    "Patricia": ("Pat", "Trish"),
    "Nicholas": ("Nick", "Nicky"),
    "Jonathan": ("Jon", "Jonny"),
    "Timothy": ("Tim",),
    "Stephen": ("Steve", "Steven"),
    "Philip": ("Phil",),
    "Andrew": ("Andy", "Drew"),
    "David": ("Dave", "Davy"),
    "Peter": ("Pete",),
    "Jacqueline": ("Jackie",),
    "Nicola": ("Nicky", "Nikki"),
    "Amanda": ("Mandy",),
    "Natalie": ("Nat",),
    "Gemma": ("Jemma",),
    "Zoe": ("Zoë",),
    "Chloe": ("Chloë",),
    "Sian": ("Siân",),
    "Sean": ("Seán", "Shaun", "Shawn"),
    "Mohammed": ("Muhammad", "Mohamed", "Mohammad", "Mohamad"),
    "Muhammad": ("Mohammed", "Muhammed"),
    "Mohamed": ("Mohammed", "Mohamud", "Mahamed"),
    "Ahmed": ("Ahmad", "Ahmet"),
    "Hussain": ("Hussein", "Husain"),
    "Hussein": ("Hussain",),
    "Hassan": ("Hasan",),
    "Yusuf": ("Yousef", "Youssef"),
    "Youssef": ("Yusuf", "Yousef"),
    "Ibrahim": ("Ebrahim",),
    "Fatima": ("Fatma", "Fatimah", "Fatuma"),
    "Aisha": ("Ayesha", "Aysha"),
    "Ayesha": ("Aisha",),
    "Maryam": ("Mariam", "Miriam"),
    "Amina": ("Aminah", "Ameena"),
    "Zainab": ("Zaynab", "Zeinab"),
    "Khadija": ("Khadijah", "Khadidja"),
    "Oluwaseun": ("Seun",),
    "Olusegun": ("Segun",),
    "Babatunde": ("Tunde",),
    "Temitope": ("Tope", "Temi"),
    "Funmilayo": ("Funmi",),
    "Adebayo": ("Bayo",),
    "Chukwuemeka": ("Emeka",),
    "Emmanuel": ("Manny",),
    "João": ("Joao",),
    "José": ("Jose",),
    "Gonçalo": ("Goncalo",),
    "Inês": ("Ines",),
    "Lucía": ("Lucia",),
    "Rocío": ("Rocio",),
    "Álvaro": ("Alvaro",),
    "Élodie": ("Elodie",),
    "Léa": ("Lea",),
    "Amélie": ("Amelie",),
    "Étienne": ("Etienne",),
    "Chloé": ("Chloe",),
    "André": ("Andre",),
    "Piotr": ("Peter",),
    "Katarzyna": ("Kasia", "Kate"),
    "Magdalena": ("Magda",),
    "Agnieszka": ("Aga",),
    "Aleksandra": ("Ola", "Alex"),
    "Tomasz": ("Tom", "Tomek"),
    "Krzysztof": ("Chris",),
    "Pawel": ("Paul",),
    "Michal": ("Michael",),
    "Jakub": ("Kuba", "Jacob"),
    "Francesco": ("Frank",),
    "Giuseppe": ("Joe", "Peppe"),
    "Alessandro": ("Alex",),
    "Mei": ("May",),
    "Abdirahman": ("Abdi",),
    "Abdullahi": ("Abdi",),
    "Fadumo": ("Faduma",),
}

#: Postcode districts of the borough: the locality written on address line 2 and the sectors in use.
POSTCODE_DISTRICTS: Final[dict[str, tuple[str, tuple[int, ...]]]] = {
    "W8": ("Kensington", (4, 5, 6, 7)),
    "W10": ("North Kensington", (5, 6)),
    "W11": ("Notting Hill", (1, 2, 3, 4)),
    "W14": ("Holland Park", (8,)),
    "SW3": ("Chelsea", (1, 2, 3, 4, 5, 6)),
    "SW5": ("Earls Court", (0, 9)),
    "SW7": ("South Kensington", (2, 3, 4, 5)),
    "SW10": ("West Brompton", (0, 9)),
}

#: Streets of the borough with their postcode district ("street|district").
_STREETS_TEXT: Final = """
Kensington Church Street|W8, Kensington High Street|W8, Holland Street|W8, Phillimore Gardens|W8,
Campden Hill Road|W8, Argyll Road|W8, Abingdon Road|W8, Edwardes Square|W8, Pembroke Road|W8,
Stratford Road|W8, Victoria Road|W8, Kensington Court|W8, Hornton Street|W8, Gloucester Walk|W8,
Sheffield Terrace|W8, Peel Street|W8, Bedford Gardens|W8, Vicarage Gate|W8, Palace Gardens Terrace|W8,
Allen Street|W8, Marloes Road|W8, Cheniston Gardens|W8, Scarsdale Villas|W8, Upper Phillimore Gardens|W8,
Iverna Gardens|W8, Lexham Gardens|W8, Kensington Square|W8, Young Street|W8, Launceston Place|W8,
Gordon Place|W8, Ladbroke Grove|W10, Golborne Road|W10, Oxford Gardens|W10, Cambridge Gardens|W10,
Bassett Road|W10, Chesterton Road|W10, St Charles Square|W10, Barlby Road|W10, Dalgarno Gardens|W10,
Latimer Road|W10, Exmoor Street|W10, Wornington Road|W10, Southern Row|W10, Telford Road|W10,
Highlever Road|W10, St Quintin Avenue|W10, Wallingford Avenue|W10, Balliol Road|W10, Treverton Street|W10,
Appleford Road|W10, Bonchurch Road|W10, Kensal Road|W10, Elkstone Road|W10, Hazlewood Crescent|W10,
Murchison Road|W10, Oakworth Road|W10, Finstock Road|W10, Silchester Road|W10, Portobello Road|W10,
Cornwall Crescent|W11, Westbourne Grove|W11, Ledbury Road|W11, Elgin Crescent|W11, Lansdowne Road|W11,
Kensington Park Road|W11, Pembridge Villas|W11, Pembridge Road|W11, Westbourne Park Road|W11,
All Saints Road|W11, Talbot Road|W11, Colville Terrace|W11, Powis Square|W11, Portland Road|W11,
Clarendon Road|W11, Holland Park Avenue|W11, Blenheim Crescent|W11, Lancaster Road|W11, Walmer Road|W11,
Princedale Road|W11, St Ann's Villas|W11, Royal Crescent|W11, Stanley Crescent|W11, Ladbroke Square|W11,
Ladbroke Gardens|W11, Arundel Gardens|W11, Chepstow Villas|W11, Denbigh Road|W11, Artesian Road|W11,
Addison Road|W14, Holland Road|W14, Holland Park|W14, Warwick Gardens|W14, Russell Road|W14,
Melbury Road|W14, Abbotsbury Road|W14, Upper Addison Gardens|W14, Holland Villas Road|W14,
Addison Crescent|W14, Napier Road|W14, Ilchester Place|W14, Oakwood Court|W14, King's Road|SW3,
Sloane Avenue|SW3, Oakley Street|SW3, Flood Street|SW3, Cheyne Walk|SW3, Cheyne Row|SW3,
Beaufort Street|SW3, Old Church Street|SW3, Glebe Place|SW3, Chelsea Manor Street|SW3, Draycott Place|SW3,
Cadogan Street|SW3, Walton Street|SW3, Elystan Place|SW3, Markham Square|SW3, Smith Street|SW3,
Tite Street|SW3, Royal Hospital Road|SW3, Jubilee Place|SW3, Bywater Street|SW3, Sydney Street|SW3,
Brompton Road|SW3, Pont Street|SW3, Hans Road|SW3, Ovington Square|SW3, Egerton Gardens|SW3,
Mallord Street|SW3, Paultons Square|SW3, Danvers Street|SW3, Earls Court Road|SW5, Nevern Square|SW5,
Nevern Place|SW5, Philbeach Gardens|SW5, Trebovir Road|SW5, Earls Court Square|SW5, Bramham Gardens|SW5,
Collingham Road|SW5, Longridge Road|SW5, Templeton Place|SW5, Kempsford Gardens|SW5, Kenway Road|SW5,
Hogarth Road|SW5, Barkston Gardens|SW5, Courtfield Gardens|SW5, Penywern Road|SW5, Warwick Road|SW5,
Eardley Crescent|SW5, Logan Place|SW5, Nevern Road|SW5, Cromwell Road|SW7, Queen's Gate|SW7,
Gloucester Road|SW7, Old Brompton Road|SW7, Onslow Gardens|SW7, Harrington Gardens|SW7, Elvaston Place|SW7,
Stanhope Gardens|SW7, Emperor's Gate|SW7, Hereford Square|SW7, Thurloe Square|SW7, Sumner Place|SW7,
Pelham Street|SW7, Cranley Gardens|SW7, Ennismore Gardens|SW7, Palace Gate|SW7, Queen's Gate Terrace|SW7,
Southwell Gardens|SW7, Courtfield Road|SW7, Roland Gardens|SW7, Wetherby Gardens|SW7, Fulham Road|SW10,
Redcliffe Gardens|SW10, Redcliffe Square|SW10, Tregunter Road|SW10, The Boltons|SW10, Gilston Road|SW10,
Limerston Street|SW10, Edith Grove|SW10, Slaidburn Street|SW10, Lots Road|SW10, Ifield Road|SW10,
Hollywood Road|SW10, Cathcart Road|SW10, Finborough Road|SW10, Drayton Gardens|SW10, Westgate Terrace|SW10,
Fernshaw Road|SW10, Gunter Grove|SW10, Stadium Street|SW10, Tadema Road|SW10, Uverdale Road|SW10,
Seaton Street|SW10, Burnaby Street|SW10, Ashburnham Road|SW10, Elm Park Gardens|SW10, Park Walk|SW10,
Camera Place|SW10
"""

#: Stems of local place names and street suffixes: combined, they lengthen the street list for boroughs larger
#: than the real one (a million persons is about six times Kensington and Chelsea).
_STEMS_TEXT: Final = """
Abbotsbury|W14, Addison|W14, Argyll|W8, Arundel|W11, Blenheim|W11, Campden|W8, Cheniston|W8, Chepstow|W11,
Colville|W11, Cornwall|W11, Courtfield|SW5, Cranley|SW7, Edwardes|W8, Elgin|W11, Gloucester|SW7,
Hornton|W8, Ladbroke|W11, Lansdowne|W11, Lexham|W8, Ledbury|W11, Melbury|W14, Nevern|SW5, Oakley|SW3,
Onslow|SW7, Pembridge|W11, Pembroke|W8, Phillimore|W8, Redcliffe|SW10, Stanhope|SW7, Tregunter|SW10,
Walmer|W11, Warwick|SW5, Westbourne|W11, Cadogan|SW3, Sloane|SW3, Cheyne|SW3, Thurloe|SW7,
Harrington|SW7, Drayton|SW10, Gunter|SW10, Golborne|W10, Kensal|W10, Barlby|W10, Dalgarno|W10,
Wornington|W10, Bramley|W10, Chesterton|W10, Bassett|W10, Oakworth|W10, Silchester|W10, Lots|SW10,
Beaufort|SW3, Markham|SW3, Tite|SW3, Earls Court|SW5, Philbeach|SW5, Brompton|SW7, Holland|W14, Ilchester|W14,
Russell|W14
"""
_SUFFIXES: Final = (
    "Road",
    "Gardens",
    "Square",
    "Place",
    "Terrace",
    "Crescent",
    "Mews",
    "Villas",
    "Walk",
    "Grove",
    "Street",
    "Court",
)


def _parse_pairs(text: str) -> list[tuple[str, str]]:
    pairs = []
    for item in _split(text):
        name, district = item.split("|")
        pairs.append((name.strip(), district.strip()))
    return pairs


def _round_robin(pairs: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Alternate districts, so that the first streets (all a small borough uses) cover every district."""
    by_district: dict[str, list[tuple[str, str]]] = {}
    for pair in pairs:
        by_district.setdefault(pair[1], []).append(pair)
    queues = list(by_district.values())
    out = []
    while any(queues):
        for queue in queues:
            if queue:
                out.append(queue.pop(0))
    return out


def _all_streets() -> tuple[tuple[str, str], ...]:
    """Real streets first (small boroughs use only these), then stem + suffix combinations."""
    streets = _parse_pairs(_STREETS_TEXT)
    seen = {name for name, _ in streets}
    combos = []
    for suffix in _SUFFIXES:
        for stem, district in _parse_pairs(_STEMS_TEXT):
            name = f"{stem} {suffix}"
            if name not in seen:
                seen.add(name)
                combos.append((name, district))
    return tuple(_round_robin(streets) + _round_robin(combos))


STREETS: Final = _all_streets()

#: Children's centres a family may attend (a service, not a criterion).
CHILDRENS_CENTRES: Final = (
    "Golborne Children's Centre",
    "Canalside Children's Centre",
    "Kensal Children's Centre",
    "Notting Hill Children's Centre",
    "Holland Park Children's Centre",
    "Earls Court Children's Centre",
    "Chelsea Children's Centre",
    "World's End Children's Centre",
)

#: Offence categories for youth offending outcomes and police records (Home Office offence groups).
OFFENCE_CATEGORIES: Final = (
    "Violence against the person",
    "Theft",
    "Robbery",
    "Criminal damage",
    "Drug offences",
    "Public order",
    "Possession of weapons",
    "Burglary",
    "Motoring",
)
